"""Positions of new nodes for a student trained with position features (``loss=nosmog``).

NOSMOG's student reads a node's position beside its features; the run's ``positions.pt``
holds the position of every node of the graph it was trained on. A node that arrives later
takes the mean of its neighbours' positions there (zeros with none), so serving such a
student needs each new node's edges to the known graph, though never the graph's structure
at inference otherwise:

    python -m g2m.serve.positions RUN_DIR/positions.pt EDGES --nodes M --out new_positions.npy

``EDGES`` (``.npy``, ``.pt`` or ``.csv``) is a ``[2, E]`` (or ``[E, 2]``) array of pairs
``(new node 0..M-1, known node id)``; the output, ``[M, P]``, is what
``python -m g2m.serve.predict ... --positions`` takes for those nodes. Torch and NumPy only.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from g2m.cli import run_tool
from g2m.errors import DataError
from g2m.io import check_output, write_output
from g2m.serve.predict import load_values, read_positions


def positions_for_new_nodes(known: Tensor, edges: Tensor, num_new: int) -> Tensor:
    """``[num_new, P]``: for each new node, the mean of ``known [N, P]`` over its neighbours
    in ``edges [2, E]`` (row 0: new node ids, row 1: known node ids); zeros with none."""
    new, old = edges.long()
    total = torch.zeros(num_new, known.size(1), dtype=known.dtype).index_add_(0, new, known[old])
    count = torch.bincount(new, minlength=num_new).to(known.dtype)
    return total / count.clamp(min=1).unsqueeze(1)


def read_edges(path: Path, num_new: int, num_known: int) -> Tensor:
    """``[2, E]`` pairs (new node, known node) from ``path``, ids checked against the sizes."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"Edge file not found: {path}")
    values = load_values(path)
    if values.dim() == 2 and values.size(0) != 2 and values.size(1) == 2:
        values = values.T
    if (
        values.dim() != 2
        or values.size(0) != 2
        or values.is_floating_point()
        and bool((values != values.round()).any())
    ):
        raise DataError(
            f"{path}: expected a [2, E] (or [E, 2]) array of integer pairs (new node, known "
            f"node), got shape {tuple(values.shape)}."
        )
    edges = values.long()
    for row, (name, size) in enumerate((("new", num_new), ("known", num_known))):
        if edges.numel() and (edges[row].min() < 0 or edges[row].max() >= size):
            raise DataError(
                f"{path}: {name} node ids must lie in 0..{size - 1}; found "
                f"{int(edges[row].min())}..{int(edges[row].max())}."
            )
    return edges


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m g2m.serve.positions", description=__doc__)
    parser.add_argument("known", type=Path, help="the run's positions.pt (or an [N, P] array)")
    parser.add_argument("edges", type=Path, help="[2, E] pairs (new node, known node)")
    parser.add_argument("--nodes", type=int, required=True, help="M, the number of new nodes")
    parser.add_argument("--out", type=Path, default=Path("new_positions.npy"))
    args = parser.parse_args(argv)
    check_output(args.out, "--out")
    if args.nodes < 1:
        raise DataError(f"--nodes {args.nodes}: expected at least one new node.")
    known = read_positions(args.known)
    edges = read_edges(args.edges, args.nodes, known.size(0))
    positions = positions_for_new_nodes(known, edges, args.nodes)

    def write(tmp: Path) -> None:
        with open(tmp, "wb") as handle:  # a handle: np.save would add ".npy" to a name
            np.save(handle, positions.numpy())

    write_output(args.out, write)
    print(f"positions of {args.nodes} new nodes written to {args.out}")


if __name__ == "__main__":
    run_tool("g2m.serve.positions", main)
