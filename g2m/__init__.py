"""g2m: GNN-to-MLP knowledge distillation.

The Python API (loaded on first use, so that ``import g2m`` stays light and a deployed
student needs torch alone):

==========================  ============================================================
``g2m.distill(data, ...)``  train a teacher on a graph and distil it into an MLP
                            (:mod:`g2m.api`); returns a :class:`g2m.Run`
``g2m.load_dataset(data)``  the checked graph g2m would train on (no training)
``g2m.load_student(path)``  rebuild a deployed ``student.pt`` -> ``(model, metadata)``
``g2m.StudentInference``    fast inference with a student (fused GPU kernel, CUDA graphs)
==========================  ============================================================
"""

from __future__ import annotations

from typing import Any

__version__ = "0.1.0"

_EXPORTS = {
    "distill": "g2m.api",
    "Run": "g2m.api",
    "load_dataset": "g2m.api",
    "load_student": "g2m.serve.artifact",
    "save_student": "g2m.serve.artifact",
    "StudentInference": "g2m.serve.inference",
}

__all__ = ["__version__", *_EXPORTS]


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        import importlib

        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'g2m' has no attribute '{name}'")
