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
    input_spec: dict[str, Any] | None = None,
) -> Path:
    """Write ``model`` as a self-describing artifact (atomic).

    ``input_spec`` describes columns the student takes after the node features (a stage's
    position features: ``{"positions": {"channels": P, ...}}``); the ``input`` block then
    also records ``node_features`` (F), and ``num_features`` is F + P.

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
        "input": student_input(model.init_args["in_channels"], input_spec),
        "classes": [str(c) for c in classes],
        "class_names": list(class_names) if class_names is not None else None,
        "provenance": provenance,
    }
    return atomic_torch_save(state, path)


def student_input(num_features: int, input_spec: dict[str, Any] | None) -> dict[str, Any]:
    """The artifact's ``input`` block: the width the MLP takes and what its columns are."""
    block: dict[str, Any] = {"num_features": num_features, "preprocessing": "none"}
    if input_spec:
        extra = sum(int(part["channels"]) for part in input_spec.values())
        block |= {"node_features": num_features - extra, **input_spec}
    return block


def load_student(path: Path) -> tuple[MLPStudent, dict[str, Any]]:
    """Rebuild the student in eval mode; returns ``(model, artifact_metadata)``.

    Raises:
        ArtifactNotFoundError: no file at ``path``.
        ArtifactError: the file is not a g2m student artifact, or is one with parts missing
            or edited (weights that do not fit ``model_args``, class lists of the wrong size).
    """
    state = read_torch_dict(path, "g2m student artifact")
    if state.get("format") != STUDENT_FORMAT:
        raise ArtifactError(f"{path} is not a g2m student artifact.")
    model, problem = None, incomplete_parts(state)
    if problem is None:
        model, problem = rebuild(state)
    if model is None:
        raise ArtifactError(
            f"{path} is not a complete g2m student artifact ({problem}); g2m.train writes "
            "student.pt into the run directory: use that file unchanged, or train again."
        )
    model.eval()
    meta = {k: v for k, v in state.items() if k != "state_dict"}
    return model, meta


def incomplete_parts(state: dict[str, Any]) -> str | None:
    """What a student artifact's dict lacks or gets wrong, or ``None`` if the parts that
    :func:`load_student` and the serving tools read are all there and agree."""
    missing = [k for k in ("model_args", "state_dict", "input") if k not in state]
    if missing:
        return "no " + ", ".join(repr(k) for k in missing)
    args, inputs = state["model_args"], state["input"]
    if not isinstance(args, dict) or not isinstance(state["state_dict"], dict):
        return "'model_args' and 'state_dict' must be dicts"
    if not isinstance(inputs, dict) or inputs.get("num_features") != args.get("in_channels"):
        return "'input.num_features' is missing or differs from model_args['in_channels']"
    outputs = args.get("out_channels")
    for key in ("classes", "class_names"):
        labels = state.get(key)
        if labels is not None and (not isinstance(labels, list) or len(labels) != outputs):
            return f"'{key}' is not a list of {outputs} labels, one per output"
    return None


def rebuild(state: dict[str, Any]) -> tuple[MLPStudent | None, str | None]:
    """``(model, None)`` with the artifact's weights loaded, or ``(None, why not)``."""
    try:
        model = MLPStudent(**state["model_args"])
    except Exception as err:  # an edited model_args: unknown or invalid arguments
        return None, f"its model_args do not build the MLP: {first_line(err)}"
    try:
        model.load_state_dict(state["state_dict"])
    except Exception as err:  # missing, extra or resized weights
        return None, f"its weights do not fit its model_args: {first_line(err)}"
    return model, None


def first_line(err: BaseException, limit: int = 160) -> str:
    """The first specific line of an error (torch's ``load_state_dict`` opens with a
    heading and lists each mismatch below it), cut to ``limit`` characters."""
    lines = [line.strip() for line in str(err).splitlines() if line.strip()]
    if len(lines) > 1 and lines[0].endswith(":"):
        lines = lines[1:]
    text = lines[0].rstrip(".") if lines else type(err).__name__
    return text if len(text) <= limit else text[: limit - 3] + "..."
