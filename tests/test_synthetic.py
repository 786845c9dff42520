"""The CSBM generator: sizes, symmetry, homophily, determinism."""

from __future__ import annotations

import pytest
import torch
from torch_geometric.utils import is_undirected

from g2m.data.synthetic import make_csbm


def edge_homophily(graph) -> float:
    src, dst = graph.edge_index
    return float((graph.y[src] == graph.y[dst]).float().mean())


def test_shapes_and_undirected():
    g = make_csbm(num_nodes=500, num_classes=5, num_features=12, avg_degree=6, seed=0)
    assert g.x.shape == (500, 12) and g.y.shape == (500,)
    assert is_undirected(g.edge_index, num_nodes=500)
    assert not bool((g.edge_index[0] == g.edge_index[1]).any())
    assert g.edge_index.size(1) == pytest.approx(500 * 6, rel=0.1)


@pytest.mark.parametrize("homophily", [0.1, 0.5, 0.9])
def test_homophily_is_tunable(homophily):
    g = make_csbm(num_nodes=2000, num_classes=4, homophily=homophily, seed=0)
    assert edge_homophily(g) == pytest.approx(homophily, abs=0.03)


def test_same_seed_same_graph():
    a, b = make_csbm(num_nodes=200, seed=3), make_csbm(num_nodes=200, seed=3)
    assert torch.equal(a.edge_index, b.edge_index) and torch.equal(a.x, b.x)
    assert not torch.equal(a.x, make_csbm(num_nodes=200, seed=4).x)


def test_features_carry_class_signal():
    g = make_csbm(num_nodes=1000, num_classes=2, num_features=8, feature_signal=4.0, seed=0)
    centre_gap = (g.x[g.y == 0].mean(0) - g.x[g.y == 1].mean(0)).norm()
    assert centre_gap > 2.0


@pytest.mark.parametrize("kwargs", [{"homophily": 1.5}, {"num_classes": 1}, {"avg_degree": 0}])
def test_bad_parameters_are_rejected(kwargs):
    with pytest.raises(ValueError):
        make_csbm(num_nodes=50, **kwargs)
