"""The deployable student artifact: weights plus everything needed to rebuild the model.

Loading needs torch alone (no Lightning, PyG or Hydra): the file is a plain ``torch.save``
dict with the MLP's constructor arguments, its ``state_dict``, the input it expects and
where it came from (as nanoGPT keeps ``model_args`` next to the weights).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from g2m.models.student import MLPStudent

STUDENT_FORMAT = "g2m-student"
STUDENT_FORMAT_VERSION = 1


def save_student(model: MLPStudent, path: Path, provenance: dict[str, Any]) -> Path:
    """Write ``model`` as a self-describing artifact (atomic)."""
    from g2m.artifacts import atomic_torch_save

    state = {
        "format": STUDENT_FORMAT,
        "version": STUDENT_FORMAT_VERSION,
        "model_args": dict(model.init_args),
        "state_dict": {k: v.detach().cpu() for k, v in model.state_dict().items()},
        "input": {"num_features": model.init_args["in_channels"], "preprocessing": "none"},
        "provenance": provenance,
    }
    return atomic_torch_save(state, path)


def load_student(path: Path) -> tuple[MLPStudent, dict[str, Any]]:
    """Rebuild the student in eval mode; returns ``(model, artifact_metadata)``."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"Student artifact not found: {path}")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:
        raise ValueError(f"{path} is not a readable g2m student artifact ({err}).") from err
    if not isinstance(state, dict) or state.get("format") != STUDENT_FORMAT:
        raise ValueError(f"{path} is not a g2m student artifact.")
    model = MLPStudent(**state["model_args"])
    model.load_state_dict(state["state_dict"])
    model.eval()
    meta = {k: v for k, v in state.items() if k != "state_dict"}
    return model, meta
