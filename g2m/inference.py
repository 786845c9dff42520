"""Fast inference with a trained student: one object, three interchangeable back-ends.

================  ==========================================================================
``eager``         the :class:`MLPStudent` itself, cast to ``dtype`` (fp32 on CPU by default)
``compile``       ``torch.compile`` of the same module (Inductor fuses bias and activation)
``fused``         one Triton kernel for the whole MLP (:mod:`g2m.fused_mlp`); CUDA only
================  ==========================================================================

``backend="auto"`` picks ``fused`` in bf16 on a CUDA device where Triton is installed and the
architecture is supported (norm ``none`` or ``batch``, hidden width <= 256), else ``eager``
(bf16 on GPU, fp32 on CPU). All back-ends compute the same function; ``python -m g2m.bench``
times them against the hardware floor.
"""

from __future__ import annotations

import copy

import torch
from torch import Tensor

from g2m.errors import ConfigError
from g2m.models.student import MLPStudent

BACKENDS = ("auto", "eager", "compile", "fused")


def triton_available() -> bool:
    try:
        import triton  # noqa: F401
    except ImportError:
        return False
    return True


def fused_supported(student: MLPStudent) -> bool:
    from g2m.fused_mlp import MAX_HIDDEN

    args = student.init_args
    return (
        args["num_layers"] >= 2
        and args["norm"] != "layer"
        and args["hidden_channels"] <= MAX_HIDDEN
    )


class StudentInference:
    """An inference-only student on ``device``: ``predict(x)`` gives ``[N, C]`` logits.

    Args:
        student: a trained student (its weights are copied, the original is left as is).
        device: where inference runs.
        backend: one of ``auto``, ``eager``, ``compile``, ``fused``.
        dtype: operand dtype; default bf16 on CUDA, fp32 on CPU. Accumulation is fp32 in
            the fused kernel and in cuBLAS.
    """

    def __init__(
        self,
        student: MLPStudent,
        device: str | torch.device = "cpu",
        backend: str = "auto",
        dtype: torch.dtype | None = None,
    ):
        self.device = torch.device(device)
        cuda = self.device.type == "cuda"
        self.dtype = dtype or (torch.bfloat16 if cuda else torch.float32)
        if backend not in BACKENDS:
            raise ConfigError(f"backend must be one of {BACKENDS}, got '{backend}'.")
        if backend == "auto":
            fused_ok = cuda and triton_available() and fused_supported(student)
            backend = "fused" if fused_ok else "eager"
        if backend == "fused" and not cuda:
            raise ConfigError("the fused back-end needs a CUDA device.")
        self.backend = backend
        self.student_args = dict(student.init_args)
        model = copy.deepcopy(student).eval().to(self.device)
        if backend == "fused":
            from g2m.fused_mlp import PackedMLP

            self.packed = PackedMLP.from_student(model, self.dtype)
            self.model = None
        else:
            self.model = model.to(self.dtype)
            if backend == "compile":
                self.model = torch.compile(self.model, dynamic=False)

    @torch.no_grad()
    def predict(self, x: Tensor) -> Tensor:
        """Logits for ``[N, F]`` features already on the device (any float dtype)."""
        if self.backend == "fused":
            from g2m.fused_mlp_triton import fused_mlp

            return fused_mlp(self.packed, x)
        return self.model(x.to(self.dtype))

    __call__ = predict
