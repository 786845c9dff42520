"""The deployable student artifact: weights plus everything needed to rebuild the model.

Loading needs torch alone (no Lightning, PyG or Hydra): the file is a plain ``torch.save``
dict with the MLP's constructor arguments, its ``state_dict``, the input it expects, the
dataset's class ids and where it came from (as nanoGPT keeps ``model_args`` next to the
weights).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from g2m.errors import ArtifactError
from g2m.io import atomic_torch_save, read_torch_dict
from g2m.models.student import MLPStudent

STUDENT_FORMAT = "g2m-student"
STUDENT_FORMAT_VERSION = 1


def save_student(
    model: MLPStudent,
    path: Path,
    provenance: dict[str, Any],
    classes: list[str] | None = None,
    class_names: list[str] | None = None,
) -> Path:
    """Write ``model`` as a self-describing artifact (atomic).

    ``classes[c]`` is the dataset's own label of the class that output ``c`` predicts
    (default ``"0"..."C-1"``; a dataset whose labels were remapped keeps its ids here);
    ``class_names[c]`` its name where the dataset names its classes.
    """
    num_classes = model.init_args["out_channels"]
    if classes is None:
        classes = [str(c) for c in range(num_classes)]
    if len(classes) != num_classes:
        raise ValueError(f"{len(classes)} class labels for a student with {num_classes} outputs")
    state = {
        "format": STUDENT_FORMAT,
        "version": STUDENT_FORMAT_VERSION,
        "model_args": dict(model.init_args),
        "state_dict": {k: v.detach().cpu() for k, v in model.state_dict().items()},
        "input": {"num_features": model.init_args["in_channels"], "preprocessing": "none"},
        "classes": [str(c) for c in classes],
        "class_names": list(class_names) if class_names is not None else None,
        "provenance": provenance,
    }
    return atomic_torch_save(state, path)


def load_student(path: Path) -> tuple[MLPStudent, dict[str, Any]]:
    """Rebuild the student in eval mode; returns ``(model, artifact_metadata)``."""
    state = read_torch_dict(path, "g2m student artifact")
    if state.get("format") != STUDENT_FORMAT:
        raise ArtifactError(f"{path} is not a g2m student artifact.")
    model = MLPStudent(**state["model_args"])
    model.load_state_dict(state["state_dict"])
    model.eval()
    meta = {k: v for k, v in state.items() if k != "state_dict"}
    return model, meta
