"""The deployable student artifact: weights plus everything needed to rebuild the model.

Loading needs torch alone (no Lightning, PyG or Hydra): the file is a plain ``torch.save``
dict with the MLP's constructor arguments, its ``state_dict``, the input it expects and
where it came from (as nanoGPT keeps ``model_args`` next to the weights).
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

import torch

from g2m.cli import run_tool
from g2m.errors import ArtifactError, ConfigError
from g2m.io import atomic_torch_save, atomic_write, read_torch_dict
from g2m.models.student import MLPStudent

STUDENT_FORMAT = "g2m-student"
STUDENT_FORMAT_VERSION = 1


def save_student(model: MLPStudent, path: Path, provenance: dict[str, Any]) -> Path:
    """Write ``model`` as a self-describing artifact (atomic).

    ``classes[c]`` is the dataset label id that output ``c`` predicts.
    """
    num_classes = model.init_args["out_channels"]
    state = {
        "format": STUDENT_FORMAT,
        "version": STUDENT_FORMAT_VERSION,
        "model_args": dict(model.init_args),
        "state_dict": {k: v.detach().cpu() for k, v in model.state_dict().items()},
        "input": {"num_features": model.init_args["in_channels"], "preprocessing": "none"},
        "classes": [str(c) for c in range(num_classes)],
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


def export_torchscript(model: MLPStudent, num_features: int, path: Path) -> Path:
    """Trace the student to TorchScript (atomic write); loads with ``torch.jit.load``."""
    example = torch.randn(4, num_features)
    with torch.no_grad():
        traced = torch.jit.trace(model.eval(), example)
    return atomic_write(path, lambda tmp: traced.save(str(tmp)))


def export_onnx(model: MLPStudent, num_features: int, path: Path) -> Path:
    """Export to ONNX (``torch.export``-based exporter) with a dynamic node axis.

    Needs the ``onnx`` and ``onnxscript`` packages (``pip install "g2m[onnx]"``).
    """
    try:
        import onnxscript  # noqa: F401  (the exporter's dependency)
    except ImportError as err:
        raise ConfigError('ONNX export needs onnx and onnxscript: pip install "g2m[onnx]"') from err
    program = torch.onnx.export(
        model.eval(),
        (torch.randn(4, num_features),),
        dynamo=True,
        verbose=False,
        input_names=["features"],
        output_names=["logits"],
        dynamic_shapes=({0: torch.export.Dim("nodes")},),
    )
    return atomic_write(path, lambda tmp: program.save(str(tmp)))


def max_logit_difference(
    model: MLPStudent, num_features: int, path: Path, fmt: str
) -> float | None:
    """Largest |logit| difference between the student and its export on random input
    (``None`` for ONNX when ``onnxruntime`` is not installed)."""
    x = torch.randn(257, num_features)
    with torch.no_grad():
        reference = model.eval()(x)
        if fmt == "torchscript":
            exported = torch.jit.load(str(path))(x)
        else:
            try:
                import onnxruntime as ort
            except ImportError:
                return None
            session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
            exported = torch.from_numpy(session.run(None, {"features": x.numpy()})[0])
    return float((reference - exported).abs().max())


PARITY_TOLERANCE = 1e-4
EXPORTERS = {"torchscript": (export_torchscript, ".torchscript.pt"), "onnx": (export_onnx, ".onnx")}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m g2m.export",
        description="Export a run's student for deployment and check its logits.",
    )
    parser.add_argument("source", type=Path, help="a run directory or a student.pt")
    parser.add_argument("--format", choices=sorted(EXPORTERS), default="torchscript")
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args(argv)
    artifact = args.source / "student.pt" if args.source.is_dir() else args.source
    model, meta = load_student(artifact)
    exporter, suffix = EXPORTERS[args.format]
    out = args.out or artifact.with_name(f"student{suffix}")
    num_features = meta["input"]["num_features"]
    exporter(model, num_features, out)
    diff = max_logit_difference(model, num_features, out, args.format)
    if diff is not None and diff > PARITY_TOLERANCE:
        out.unlink(missing_ok=True)
        raise ArtifactError(
            f"{args.format} export disagrees with the student (max |Δlogit| "
            f"{diff:.2e}); nothing was written."
        )
    check = (
        "not checked: onnxruntime is not installed"
        if diff is None
        else (f"max |Δlogit| vs torch: {diff:.1e}")
    )
    print(f"{args.format} student written to {out} ({check})")


if __name__ == "__main__":
    run_tool("g2m.export", main)
