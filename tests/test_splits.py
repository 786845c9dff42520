"""CPF, fixed-mask and inductive splits, on real graphs and the synthetic one."""

from __future__ import annotations

import pytest
import torch

from g2m.data import make_split, observed_subgraph
from g2m.data.splits import MaskSplit, cpf_split, hold_out, random_split, to_local
from g2m.errors import DataError
from tests.conftest import cpf_split as tiny_cpf
from tests.conftest import load_catalog


def _disjoint_and_complete(split, num_nodes):
    parts = [split.train, split.val, split.test, split.test_ind]
    joined = torch.cat(parts)
    assert joined.unique().numel() == joined.numel(), "split parts overlap"
    assert joined.numel() == num_nodes, "split does not cover every node"


@pytest.mark.parametrize(
    ("name", "nodes", "edges", "classes"),
    [("cora", 2485, 5069, 7), ("citeseer", 2110, 3668, 6)],
)
def test_cpf_largest_connected_component(name, nodes, edges, classes, data_dir, cache_dir):
    graph = load_catalog(name, cache_dir, data_dir).data
    assert graph.num_nodes == nodes
    assert graph.edge_index.size(1) == 2 * edges  # undirected, stored both ways
    src, dst = graph.edge_index
    assert not bool((src == dst).any()), "self-loops must be removed"
    assert int(graph.y.max()) + 1 == classes


@pytest.mark.parametrize("name", ["cora", "citeseer"])
def test_cpf_split_counts_per_class(name, data_dir, cache_dir):
    graph = load_catalog(name, cache_dir, data_dir).data
    split = tiny_cpf(graph, seed=3, train=20, val=30)
    num_classes = int(graph.y.max()) + 1
    assert torch.equal(
        torch.bincount(graph.y[split.train], minlength=num_classes), torch.full((num_classes,), 20)
    )
    assert torch.equal(
        torch.bincount(graph.y[split.val], minlength=num_classes), torch.full((num_classes,), 30)
    )
    assert split.test.numel() == graph.num_nodes - 50 * num_classes
    _disjoint_and_complete(split, graph.num_nodes)


def test_cpf_split_is_redrawn_per_seed_and_reproducible(tiny_graph):
    a = cpf_split(tiny_graph.y, 5, 5, seed=0)
    b = cpf_split(tiny_graph.y, 5, 5, seed=0)
    c = cpf_split(tiny_graph.y, 5, 5, seed=1)
    assert all(torch.equal(x, y) for x, y in zip(a, b, strict=True))
    assert not torch.equal(a[0], c[0])


def test_split_that_cannot_be_drawn_names_the_class(tiny_graph):
    with pytest.raises(ValueError, match="class .* has .* nodes"):
        cpf_split(tiny_graph.y, 40, 30, seed=0)


def test_inductive_holds_out_a_fifth_of_test(tiny_graph):
    split = tiny_cpf(tiny_graph, seed=0, held_out=0.2)
    total_test = split.test.numel() + split.test_ind.numel()
    assert split.test_ind.numel() == int(0.2 * total_test)
    _disjoint_and_complete(split, tiny_graph.num_nodes)
    assert split.inductive


def test_observed_subgraph_drops_every_edge_of_held_out_nodes(tiny_graph):
    split = tiny_cpf(tiny_graph, seed=0, held_out=0.2)
    observed = split.observed
    sub = observed_subgraph(tiny_graph, split)
    assert sub.num_nodes == observed.numel()
    # map the subgraph's edges back to global ids: none may touch a held-out node
    global_edges = observed[sub.edge_index]
    held_out = torch.zeros(tiny_graph.num_nodes, dtype=torch.bool)
    held_out[split.test_ind] = True
    assert not bool(held_out[global_edges].any())
    # and every edge between observed nodes survives
    src, dst = tiny_graph.edge_index
    keep = ~held_out[src] & ~held_out[dst]
    assert sub.edge_index.size(1) == int(keep.sum())
    assert torch.equal(sub.x, tiny_graph.x[observed])


def test_transductive_observed_graph_is_the_graph(tiny_graph):
    split = tiny_cpf(tiny_graph, seed=0)
    assert observed_subgraph(tiny_graph, split) is tiny_graph
    assert split.test_ind.numel() == 0


def test_hold_out_rejects_bad_fraction():
    with pytest.raises(ValueError, match=r"\[0, 1\)"):
        hold_out(torch.arange(10), 1.5, seed=0)


def test_to_local_rejects_unobserved_ids():
    with pytest.raises(ValueError, match="not part of the observed graph"):
        to_local(torch.tensor([1]), torch.tensor([0, 2]), num_nodes=3)


def test_public_planetoid_split(data_dir, cache_dir):
    graph = load_catalog("cora-planetoid", cache_dir, data_dir).data
    split = make_split(graph, MaskSplit("public", False), seed=0)
    assert (split.train.numel(), split.val.numel(), split.test.numel()) == (140, 500, 1000)


def test_fixed_split_leaves_unassigned_nodes_observed(data_dir, cache_dir):
    graph = load_catalog("cora-geom-gcn", cache_dir, data_dir).data
    split = make_split(graph, MaskSplit("geom-gcn", True), seed=0, held_out_fraction=0.2)
    assigned = split.train.numel() + split.val.numel() + split.test.numel()
    assert assigned + split.test_ind.numel() < graph.num_nodes  # geom-gcn skips some nodes
    assert split.observed.numel() == graph.num_nodes - split.test_ind.numel()


def test_geom_gcn_split_follows_the_seed(data_dir, cache_dir):
    graph = load_catalog("texas", cache_dir, data_dir).data
    assert graph.num_nodes == 183
    geom_gcn = MaskSplit("geom-gcn", True)
    first, eleventh = make_split(graph, geom_gcn, seed=0), make_split(graph, geom_gcn, 10)
    second = make_split(graph, geom_gcn, seed=1)
    assert first.same_as(eleventh)
    assert not torch.equal(first.train, second.train)
    assert not set(first.train.tolist()) & set(first.test.tolist())


def test_random_protocol_draws_per_class_train_then_fixed_size_val_and_test():
    labels = torch.arange(400) % 4
    train, val, test = random_split(labels, 5, 50, 100, seed=3)
    assert torch.bincount(labels[train]).tolist() == [5, 5, 5, 5]
    assert (val.numel(), test.numel()) == (50, 100)
    parts = torch.cat([train, val, test])
    assert parts.unique().numel() == parts.numel()  # disjoint
    again = random_split(labels, 5, 50, 100, seed=3)
    assert all(torch.equal(a, b) for a, b in zip((train, val, test), again, strict=True))
    assert not torch.equal(val, random_split(labels, 5, 50, 100, seed=4)[1])
    with pytest.raises(DataError, match="val_size"):
        random_split(labels, 5, 300, 100, seed=0)


@pytest.mark.parametrize("protocol", ["cpf", "random", "ratio", "masks"])
def test_the_inductive_hold_out_works_on_top_of_every_protocol(protocol):
    from g2m.data.splits import CPFSplit, RandomSplit, RatioSplit
    from g2m.data.synthetic import make_csbm

    graph = make_csbm(num_nodes=600, num_classes=3, num_features=4, seed=0)
    graph.train_mask = torch.arange(600) % 3 == 0
    graph.val_mask = torch.arange(600) % 3 == 1
    graph.test_mask = torch.arange(600) % 3 == 2
    protocols = {
        "cpf": CPFSplit("cpf", 10, 10),
        "random": RandomSplit("random", 10, 50, 200),
        "ratio": RatioSplit("ratio", 0.6, 0.2, 0.2),
        "masks": MaskSplit("masks", False),
    }
    split = make_split(graph, protocols[protocol], seed=1, held_out_fraction=0.2)
    test_total = split.test.numel() + split.test_ind.numel()
    assert split.inductive and split.test_ind.numel() == int(0.2 * test_total)
    parts = torch.cat([split.train, split.val, split.test, split.test_ind])
    assert parts.unique().numel() == parts.numel()
    assert not torch.isin(split.test_ind, split.observed).any()
