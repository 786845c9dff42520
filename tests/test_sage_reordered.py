"""g2m.models.sage: the reordered GraphSAGE is PyG's function (values, gradients, parameters)
and aggregates its constant input features once per (features, adjacency)."""

from __future__ import annotations

import pytest
import torch
from torch_geometric.nn.models import GraphSAGE as PyGGraphSAGE

from g2m.models.sage import GraphSAGE, ReorderedSAGEConv
from g2m.models.teacher import sparse_adjacency
from g2m.run import pipeline
from tests.conftest import compose_config, tiny_overrides

REORDERED = "teacher.model._target_=g2m.models.sage.GraphSAGE"


def pair(hidden: int, out: int, **kwargs) -> tuple[torch.nn.Module, torch.nn.Module]:
    torch.manual_seed(0)
    pyg = PyGGraphSAGE(12, hidden, 3, out, dropout=0.0, **kwargs)
    ours = GraphSAGE(12, hidden, 3, out, dropout=0.0, **kwargs)
    ours.load_state_dict(pyg.state_dict())
    return pyg, ours


def graph(num_nodes: int = 40):
    gen = torch.Generator().manual_seed(1)
    x = torch.randn(num_nodes, 12, generator=gen)
    edge_index = torch.randint(0, num_nodes, (2, 160), generator=gen)
    edge_index = edge_index[:, edge_index[0] != 3]  # node 3 has no in-neighbours: mean = 0
    edge_index = edge_index[:, edge_index[1] != 3]
    return x, edge_index


@pytest.mark.parametrize("hidden, out", [(32, 5), (8, 5), (12, 12)])  # narrowing, widening, equal
@pytest.mark.parametrize("kind", ["edge_index", "csr"])
@pytest.mark.parametrize("kwargs", [{"root_weight": False}, {"root_weight": True}])
def test_the_same_function_values_and_gradients_as_pygs(hidden, out, kind, kwargs):
    pyg, ours = pair(hidden, out, **kwargs)
    x, edge_index = graph()
    adj = edge_index if kind == "edge_index" else sparse_adjacency(edge_index, x.size(0))
    expected, got = pyg(x, adj), ours(x, adj)
    torch.testing.assert_close(got, expected, atol=1e-5, rtol=1e-5)
    # node 3 has no neighbours: W * 0 + b in both orders (the bias is added after)
    torch.testing.assert_close(got[3], expected[3], atol=1e-6, rtol=1e-6)
    expected.square().sum().backward()
    ours(x, adj).square().sum().backward()  # a second forward: from the cache
    for (name, a), b in zip(pyg.named_parameters(), ours.parameters(), strict=True):
        torch.testing.assert_close(b.grad, a.grad, atol=1e-4, rtol=1e-4, msg=name)
    assert list(ours.state_dict()) == list(pyg.state_dict())


def counting(conv: ReorderedSAGEConv) -> list[int]:
    calls = []
    original = conv.propagate

    def propagate(*args, **kwargs):
        calls.append(1)
        return original(*args, **kwargs)

    conv.propagate = propagate
    return calls


def test_the_first_layer_aggregates_its_input_once_per_features_and_graph():
    _, ours = pair(32, 5, root_weight=False)
    x, edge_index = graph()
    adj = sparse_adjacency(edge_index, x.size(0))
    calls = counting(ours.convs[0])
    first = ours(x, adj)
    ours(x, adj).sum().backward()  # training step: x needs no gradient
    with torch.no_grad():
        ours(x, adj)
    assert len(calls) == 1
    ours(x, sparse_adjacency(edge_index.flip(0), x.size(0)))  # another graph
    assert len(calls) == 2
    x.mul_(2)  # the same tensor written in place: its version moves
    doubled = ours(x, adj)
    assert len(calls) == 3
    assert not torch.allclose(doubled, first)
    # only the first layer keeps anything; a hidden layer's input changes every pass
    assert [conv.cache_constant_input for conv in ours.convs] == [True, False, False]


def test_an_input_that_needs_gradients_is_never_cached():
    _, ours = pair(32, 5, root_weight=False)
    x, edge_index = graph()
    x.requires_grad_(True)
    calls = counting(ours.convs[0])
    ours(x, edge_index).sum().backward()
    ours(x, edge_index).sum().backward()
    assert len(calls) == 2 and x.grad is not None and x.grad.abs().sum() > 0


@pytest.mark.slow
def test_a_run_with_the_reordered_teacher_matches_pygs_run(tmp_path):
    """The whole pipeline on the synthetic graph: the reordered teacher and PyG's agree to float
    rounding (the same function; only the order of additions differs)."""
    runs = {}
    for name, extra in (("pyg", []), ("reordered", [REORDERED])):
        cfg = compose_config(tiny_overrides(tmp_path / "cache", "store=false", *extra))
        runs[name] = pipeline.run(cfg, tmp_path / name)
    assert runs["reordered"]["teacher"]["val_acc"] > 0.5
    for stage in ("teacher", "student"):
        for key in ("val_acc", "test_acc"):
            assert runs["reordered"][stage][key] == pytest.approx(runs["pyg"][stage][key], abs=0.02)


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_on_a_gpu_the_csr_products_agree_with_pygs():
    """cuSPARSE's CSR products in both orders: the same values and gradients on the GPU."""
    pyg, ours = pair(32, 5, root_weight=False)
    pyg, ours = pyg.cuda(), ours.cuda()
    x, edge_index = graph(400)
    x = x.cuda()
    adj = sparse_adjacency(edge_index.cuda(), x.size(0))
    expected, got = pyg(x, adj), ours(x, adj)
    torch.testing.assert_close(got, expected, atol=1e-5, rtol=1e-5)
    expected.square().sum().backward()
    got.square().sum().backward()
    for (name, a), b in zip(pyg.named_parameters(), ours.parameters(), strict=True):
        torch.testing.assert_close(b.grad, a.grad, atol=1e-4, rtol=1e-4, msg=name)
