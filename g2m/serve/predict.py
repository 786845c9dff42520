"""Predict classes with an exported student: ``python -m g2m.serve.predict ARTIFACT FEATURES``.

Reads node features from ``.npy``, ``.pt`` (a 2-D tensor) or ``.csv`` (comma-separated, no
header), checks them against what the artifact expects (feature dimension; real, finite
values that float32 holds) and writes one CSV row per node,
``node,class,[class_name,]prob_0,...,prob_{C-1}``, ``class`` being the dataset's own label id
(kept in the artifact when labels were remapped) and ``class_name`` its name where the
dataset names its classes. The file is written whole or not at all (a temporary file beside
it, renamed into place); an ``--out`` that cannot be written is refused before any work.
Torch and NumPy only; ``--device cuda`` runs the student through
:class:`g2m.serve.inference.StudentInference` (the fused bf16 kernel where Triton is present).

A student trained with position features (``loss=nosmog``: its artifact's ``input`` block
has a ``positions`` entry) takes them after the features: ``--positions FILE``, one row per
node in the features' order, in the same formats. The run directory's ``positions.pt``
holds them for the training graph's nodes; a new node's are the mean of its neighbours'
there (``python -m g2m.serve.positions``), so a new node then needs its edges.
"""

from __future__ import annotations

import argparse
import csv
import warnings
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from g2m.cli import run_tool
from g2m.errors import ConfigError, DataError
from g2m.io import check_output, write_output
from g2m.serve.artifact import load_student

READERS = {".npy", ".pt", ".csv"}
CSV_LAYOUT = "comma-separated numbers, one line per node, no header"


def read_features(path: Path) -> Tensor:
    """``[N, F]`` float32 features from ``.npy``, ``.pt`` or ``.csv``.

    Refused (:class:`DataError`): another file type, a file that does not parse, a shape
    other than ``[N, F]`` with ``N, F >= 1``, complex values, and values that float32 cannot
    hold (they would silently become Inf).
    """
    path = Path(path)
    if path.suffix not in READERS:
        raise DataError(
            f"{path}: unsupported feature file type '{path.suffix}'; use one of {sorted(READERS)}."
        )
    if not path.is_file():
        raise DataError(f"Feature file not found: {path}")
    values = load_values(path)
    layout = CSV_LAYOUT if path.suffix == ".csv" else "a 2-D [nodes, features] array"
    if values.dim() != 2:
        raise DataError(
            f"{path}: features must be a 2-D [nodes, features] array, "
            f"got shape {tuple(values.shape)}."
        )
    if values.numel() == 0:
        raise DataError(
            f"{path} holds no features (shape {tuple(values.shape)}: an empty file?); give at "
            f"least one node and one feature, as {layout}."
        )
    return to_float32(values, path)


def load_values(path: Path) -> Tensor:
    """The file's numbers as a tensor of their own dtype (float64 for CSV, so that values
    beyond float32's range can be told apart from Inf)."""
    try:
        with warnings.catch_warnings():  # numpy warns on an empty CSV: we say it ourselves
            warnings.simplefilter("ignore")
            if path.suffix == ".npy":
                array = np.load(path, allow_pickle=False)
            elif path.suffix == ".csv":
                array = np.loadtxt(path, delimiter=",", dtype=np.float64, ndmin=2)
            else:
                array = torch.load(path, map_location="cpu", weights_only=True)
            return torch.as_tensor(array)
    except Exception as err:
        hint = f"; expected {CSV_LAYOUT}" if path.suffix == ".csv" else ""
        raise DataError(f"{path} could not be read as features ({err}){hint}.") from err


def to_float32(values: Tensor, path: Path) -> Tensor:
    """``values`` as float32, refusing complex numbers and finite values float32 cannot hold."""
    if values.is_complex():
        raise DataError(
            f"{path}: features are complex ({values.dtype}); the student takes real numbers: "
            "pass the real part, or the real and imaginary parts as separate columns."
        )
    features = values.float()
    overflow = features.isinf() & values.isfinite()  # [N, F]
    if bool(overflow.any()):
        rows, cols = overflow.nonzero().unbind(1)
        columns = cols.unique().tolist()
        named = f"{columns[:5]}" + (f" and {len(columns) - 5} more" if len(columns) > 5 else "")
        raise DataError(
            f"{path}: {int(overflow.sum())} values are beyond float32's range (|x| > "
            f"{torch.finfo(torch.float32).max:.2e}) in columns {named} (0-based; first at "
            f"row {int(rows[0])}); the student computes in float32: rescale those features."
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


def with_positions(
    features: Tensor, positions_path: Path | None, inputs: dict, features_path: Path
) -> Tensor:
    """``[N, F + P]``: the features and, where the student takes them (``inputs``: the
    artifact's ``input`` block), the positions read from ``positions_path``, checked."""
    spec = inputs.get("positions")
    if spec is None:
        if positions_path is not None:
            raise DataError(
                f"--positions {positions_path} was given, but this student takes no position "
                "features (only a loss=nosmog student does): leave --positions out."
            )
        return features
    channels, node_features = int(spec["channels"]), int(inputs["node_features"])
    if positions_path is None:
        raise DataError(
            f"this student takes {channels} position features after its {node_features} node "
            f"features ({spec.get('method', 'positions')}, loss=nosmog): pass --positions FILE "
            "([nodes, positions], the rows of the features' nodes; the run directory's "
            "positions.pt for the training graph's nodes; new nodes: python -m "
            "g2m.serve.positions)."
        )
    if features.size(1) != node_features:
        raise DataError(
            f"{features_path}: {features.size(1)} feature columns, but this student takes "
            f"{node_features} node features (and {channels} positions from --positions)."
        )
    positions = read_positions(positions_path)
    if positions.shape != (features.size(0), channels):
        raise DataError(
            f"--positions {positions_path}: shape {tuple(positions.shape)}, expected "
            f"({features.size(0)}, {channels}): one row of {channels} per node of {features_path}."
        )
    return torch.cat([features, positions], dim=1)


def read_positions(path: Path) -> Tensor:
    """``[N, P]`` positions from a features-like file, or a run's ``positions.pt`` artifact."""
    if Path(path).suffix == ".pt" and Path(path).is_file():
        state = torch.load(path, map_location="cpu", weights_only=True)  # no pickled code
        if isinstance(state, dict) and state.get("kind") == "positions":
            return state["positions"].float()
    return read_features(path)


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

    return write_output(path, write)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m g2m.serve.predict", description=__doc__)
    parser.add_argument("artifact", type=Path, help="student.pt (or a run directory)")
    parser.add_argument("features", type=Path, help="features: .npy, .pt or .csv")
    parser.add_argument(
        "--positions",
        type=Path,
        help="a loss=nosmog student's position features: .npy, .pt or .csv, one row per node",
    )
    parser.add_argument("--out", type=Path, default=Path("predictions.csv"))
    parser.add_argument(
        "--device", default="cpu", choices=["cpu", "cuda"], help="where the student runs"
    )
    args = parser.parse_args(argv)
    check_output(args.out, "--out")
    artifact = args.artifact / "student.pt" if args.artifact.is_dir() else args.artifact
    model, meta = load_student(artifact)
    if args.device == "cuda":
        if not torch.cuda.is_available():
            raise ConfigError("--device cuda was asked for but no CUDA device is visible.")
        from g2m.serve.inference import StudentInference

        model = StudentInference(model, "cuda")
    features = read_features(args.features)
    features = with_positions(features, args.positions, meta["input"], args.features)
    probs = predict(model, features, meta["input"]["num_features"], device=args.device)
    write_predictions(probs, args.out, meta.get("classes"), meta.get("class_names"))
    print(f"{probs.size(0)} predictions written to {args.out}")


if __name__ == "__main__":
    run_tool("g2m.serve.predict", main)
