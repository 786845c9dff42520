"""``python -m g2m.serve.export``: a run's student as TorchScript or ONNX, checked against it.

The export is written only if its logits match the student's on random input.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch

from g2m.cli import run_tool
from g2m.errors import ArtifactError, ConfigError
from g2m.io import check_output, write_output
from g2m.models.student import MLPStudent
from g2m.serve.artifact import load_student


def export_torchscript(model: MLPStudent, num_features: int, path: Path) -> Path:
    """Trace the student to TorchScript (atomic write); loads with ``torch.jit.load``."""
    example = torch.randn(4, num_features)
    with torch.no_grad():
        traced = torch.jit.trace(model.eval(), example)
    return write_output(path, lambda tmp: traced.save(str(tmp)))


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
    return write_output(path, lambda tmp: program.save(str(tmp)))


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
        prog="python -m g2m.serve.export",
        description="Export a run's student for deployment and check its logits.",
    )
    parser.add_argument("source", type=Path, help="a run directory or a student.pt")
    parser.add_argument("--format", choices=sorted(EXPORTERS), default="torchscript")
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args(argv)
    if args.out is not None:
        check_output(args.out, "--out")
    artifact = args.source / "student.pt" if args.source.is_dir() else args.source
    model, meta = load_student(artifact)
    exporter, suffix = EXPORTERS[args.format]
    out = args.out or check_output(artifact.with_name(f"student{suffix}"), "the export (--out)")
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
    run_tool("g2m.serve.export", main)
