"""Predict classes with an exported student: ``python -m g2m.serve.predict ARTIFACT FEATURES``.

Reads node features from ``.npy``, ``.pt`` (a 2-D tensor) or ``.csv`` (comma-separated, no
header), checks them against what the artifact expects (feature dimension, finite values) and
writes one CSV row per node: ``node,class,[class_name,]prob_0,...,prob_{C-1}``, ``class``
being the dataset's own label id (kept in the artifact when labels were remapped) and
``class_name`` its name where the dataset names its classes. Torch and NumPy only;
``--device cuda`` runs the student through :class:`g2m.serve.inference.StudentInference`
(the fused bf16 kernel where Triton is present).
"""

from __future__ import annotations

import argparse
import csv
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from g2m.cli import run_tool
from g2m.errors import ConfigError, DataError
from g2m.io import atomic_write
from g2m.serve.artifact import load_student

READERS = {".npy", ".pt", ".csv"}


def read_features(path: Path) -> Tensor:
    """``[N, F]`` float32 features from ``.npy``, ``.pt`` or ``.csv``."""
    path = Path(path)
    if path.suffix not in READERS:
        raise DataError(
            f"{path}: unsupported feature file type '{path.suffix}'; use one of {sorted(READERS)}."
        )
    if not path.is_file():
        raise DataError(f"Feature file not found: {path}")
    try:
        if path.suffix == ".npy":
            array = np.load(path, allow_pickle=False)
        elif path.suffix == ".csv":
            array = np.loadtxt(path, delimiter=",", dtype=np.float32, ndmin=2)
        else:
            array = torch.load(path, map_location="cpu", weights_only=True)
        features = torch.as_tensor(array).float()
    except Exception as err:
        raise DataError(f"{path} could not be read as features ({err}).") from err
    if features.dim() != 2:
        raise DataError(
            f"{path}: features must be a 2-D [nodes, features] array, "
            f"got shape {tuple(features.shape)}."
        )
    return features


@torch.no_grad()
def predict(
    model: Callable[[Tensor], Tensor],
    features: Tensor,
    expected_dim: int,
    batch_size: int = 65536,
    device: str | torch.device = "cpu",
) -> Tensor:
    """Class probabilities ``[N, C]`` (fp32, on the CPU) after checking dimension and
    finiteness; chunks of ``batch_size`` rows go through ``model`` on ``device``."""
    if features.size(1) != expected_dim:
        raise DataError(
            f"features have {features.size(1)} columns but the student expects {expected_dim}."
        )
    bad = ~features.isfinite().all(dim=1)
    if bool(bad.any()):
        rows = bad.nonzero().view(-1)[:5].tolist()
        raise DataError(f"{int(bad.sum())} rows contain NaN or Inf (first rows: {rows}).")
    chunks = features.split(batch_size)
    return torch.cat([model(c.to(device)).float().softmax(-1).cpu() for c in chunks])


def write_predictions(
    probs: Tensor,
    path: Path,
    classes: list[str] | None = None,
    class_names: list[str] | None = None,
) -> Path:
    """``node,class,[class_name,]prob_0,...``: ``class`` is the dataset's own label of the
    most likely output (``classes[c]``, as the student artifact stores it), ``class_name`` its
    name where the dataset has names, ``prob_c`` the probability of output ``c``."""
    labels = classes if classes is not None else [str(c) for c in range(probs.size(1))]
    best = probs.argmax(1).tolist()
    header = ["node", "class"] + ["class_name"] * (class_names is not None)
    header += [f"prob_{c}" for c in range(probs.size(1))]

    def write(tmp: Path) -> None:
        with open(tmp, "w", newline="") as handle:
            out = csv.writer(handle)
            out.writerow(header)
            for node, (c, row) in enumerate(zip(best, probs.tolist(), strict=True)):
                name = [class_names[c]] if class_names is not None else []
                out.writerow([node, labels[c], *name, *(f"{p:.6f}" for p in row)])

    return atomic_write(path, write)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m g2m.serve.predict", description=__doc__)
    parser.add_argument("artifact", type=Path, help="student.pt (or a run directory)")
    parser.add_argument("features", type=Path, help="features: .npy, .pt or .csv")
    parser.add_argument("--out", type=Path, default=Path("predictions.csv"))
    parser.add_argument(
        "--device", default="cpu", choices=["cpu", "cuda"], help="where the student runs"
    )
    args = parser.parse_args(argv)
    artifact = args.artifact / "student.pt" if args.artifact.is_dir() else args.artifact
    model, meta = load_student(artifact)
    if args.device == "cuda":
        if not torch.cuda.is_available():
            raise ConfigError("--device cuda was asked for but no CUDA device is visible.")
        from g2m.serve.inference import StudentInference

        model = StudentInference(model, "cuda")
    features = read_features(args.features)
    probs = predict(model, features, meta["input"]["num_features"], device=args.device)
    write_predictions(probs, args.out, meta.get("classes"), meta.get("class_names"))
    print(f"{probs.size(0)} predictions written to {args.out}")


if __name__ == "__main__":
    run_tool("g2m.serve.predict", main)
