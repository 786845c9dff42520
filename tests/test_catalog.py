"""The catalog's datasets, now YAMLs over the generic loaders, load the graphs and draw the
splits they did before (digests recorded with the old loaders, tests/fixtures)."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest
import torch

from g2m.data.splits import make_split
from g2m.run.build import build_node
from tests.conftest import compose_config, load_catalog

DIGESTS = json.loads((Path(__file__).parent / "fixtures" / "catalog_digests.json").read_text())
REAL = sorted(k for k in DIGESTS if not k.startswith("_") and k != "synthetic")


def digest(*tensors: torch.Tensor) -> str:
    h = hashlib.sha256()
    for t in tensors:
        t = t.contiguous().cpu()
        h.update(str(t.dtype).encode())
        h.update(str(tuple(t.shape)).encode())
        h.update(t.numpy().tobytes())
    return h.hexdigest()[:16]


def check(option: str, graph) -> None:
    expected = DIGESTS[option]
    assert digest(graph.x, graph.edge_index, graph.y) == expected["graph"]
    protocol = build_node(compose_config([f"dataset={option}"]).split, "split")
    for seed in range(10):
        for fraction in (0.0, 0.2):
            split = make_split(graph, protocol, seed, fraction)
            parts = (split.train, split.val, split.test, split.test_ind)
            assert digest(*parts) == expected["splits"][f"split{seed}-{fraction}"], (seed, fraction)


def test_the_synthetic_graph_and_its_splits_are_unchanged(tmp_path):
    check("synthetic", load_catalog("synthetic", tmp_path).data)


@pytest.mark.slow
@pytest.mark.parametrize("option", REAL)
def test_a_benchmark_graph_and_its_splits_are_unchanged(option, data_dir, cache_dir):
    check(option, load_catalog(option, cache_dir, data_dir).data)
