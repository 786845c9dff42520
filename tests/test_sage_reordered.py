"""g2m.models.sage: the reordered GraphSAGE is PyG's function (values, gradients, parameters)
and aggregates its constant input features once per (features, adjacency)."""

from __future__ import annotations

import copy

import pytest
import torch
from torch_geometric.nn.models import GraphSAGE as PyGGraphSAGE

from g2m.data.splits import make_split
from g2m.errors import ConfigError
from g2m.lit.codebook import CodebookSystem
from g2m.lit.teacher import TeacherSystem
from g2m.models.codebook import GraphTokenizer
from g2m.models.sage import GraphSAGE, ReorderedSAGEConv
from g2m.models.teacher import sparse_adjacency
from g2m.run import pipeline
from g2m.run.build import RunModels, build_run
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


def batch_norm_model(**kwargs) -> GraphSAGE:
    torch.manual_seed(0)
    return GraphSAGE(
        12, 32, 3, 5, dropout=0.5, norm="batch_norm", root_weight=False, **kwargs
    )  # fmt: skip


@pytest.mark.parametrize("stored_transpose", [False, True])
def test_rows_give_those_rows_of_the_full_forward_and_the_same_gradients(stored_transpose):
    """Training mode (dropout, batch norm on batch statistics): only the last layer is
    restricted, so the same draws and statistics give the same rows and gradients; eval
    mode restricts every layer to the rows the next one reads."""
    model = batch_norm_model(stored_transpose=stored_transpose)
    x, edge_index = graph(120)
    adj = sparse_adjacency(edge_index, x.size(0), self_loops=True)
    rows = torch.tensor([3, 17, 40, 41, 99])
    outputs, grads = [], []
    for restricted in (False, True):
        model.zero_grad()
        torch.manual_seed(1)
        out = model(x, adj, rows=rows) if restricted else model(x, adj)[rows]
        out.square().sum().backward()
        outputs.append(out.detach())
        grads.append([p.grad.clone() for p in model.parameters()])
    torch.testing.assert_close(outputs[1], outputs[0], atol=1e-6, rtol=1e-6)
    for a, b in zip(*grads, strict=True):
        torch.testing.assert_close(b, a, atol=1e-6, rtol=1e-6)
    model.eval()
    with torch.no_grad():
        torch.testing.assert_close(model(x, adj, rows=rows), model(x, adj)[rows])
    plan = model._plan(adj, rows)
    assert [r.numel() for r in plan.rows][-1] == 5 and plan.rows[0].numel() < 120


def test_rows_follow_a_new_graph_and_refuse_what_they_cannot_restrict():
    model = batch_norm_model().eval()
    x, edge_index = graph(120)
    rows = torch.tensor([5, 6])
    with torch.no_grad():
        for adj in (
            sparse_adjacency(edge_index, 120, self_loops=True),
            sparse_adjacency(edge_index.flip(0), 120),
        ):
            torch.testing.assert_close(model(x, adj, rows=rows), model(x, adj)[rows])
        with pytest.raises(ValueError, match="CSR adjacency"):
            model(x, edge_index, rows=rows)
    graph_norm = GraphSAGE(12, 32, 3, 5, norm="layer_norm", norm_kwargs={"mode": "graph"})
    assert not graph_norm.selects_rows  # its statistics span the rows: the full forward
    with pytest.raises(ValueError, match="no norm but batch norm"):
        graph_norm.eval()(x, sparse_adjacency(edge_index, 120), rows=rows)
    assert GraphSAGE(12, 32, 3, 5, norm="batch_norm").selects_rows
    with pytest.raises(ConfigError, match="gather_dtype must be one of"):
        GraphSAGE(12, 32, 3, 5, gather_dtype="fp8")
    with pytest.raises(ConfigError, match="needs stored_transpose"):
        GraphSAGE(12, 32, 3, 5, gather_dtype="bfloat16")


def test_a_pickled_model_carries_no_restricted_adjacencies():
    model = batch_norm_model().eval()
    x, edge_index = graph(120)
    adj = sparse_adjacency(edge_index, 120)
    with torch.no_grad():
        model(x, adj, rows=torch.tensor([1, 2]))
    assert model._plans and not copy.deepcopy(model)._plans


def test_the_teacher_and_codebook_stages_score_their_nodes_alone_with_the_same_result(tmp_path):
    """TeacherSystem and CodebookSystem ask a row-selecting model for just the nodes they
    score (the training nodes' loss, the validation nodes' accuracy): the same numbers."""
    cfg = compose_config(tiny_overrides(tmp_path / "cache", REORDERED))
    plan = build_run(cfg)
    loaded = plan.source.load(plan.location)
    split = make_split(loaded.data, plan.split, 0, plan.held_out_fraction)
    teacher = TeacherSystem(
        RunModels.for_graph(plan, loaded).teacher(), loaded.data, split, lr=0.01,
        weight_decay=0.0,
    )  # fmt: skip
    assert teacher.model.selects_rows
    teacher.eval()
    g = teacher.observed
    with torch.no_grad():
        for part in ("train", "val"):
            rows = teacher.local[part]
            torch.testing.assert_close(teacher._logits_at(rows), teacher.model(g.x, g.adj_t)[rows])

    encoder = GraphSAGE(g.x.size(1), 16, 2, 8, root_weight=False, norm="batch_norm")
    tokenizer = GraphTokenizer(encoder, g.x.size(1), 3, codebook_size=4, self_loops=True)
    codebook = CodebookSystem(
        tokenizer, loaded.data, split, lr=0.01, weight_decay=0.0,
        weights={"ce": 1.0, "feature": 1.0, "structure": 1.0},
    )  # fmt: skip
    assert not tokenizer.selects_rows  # the codebook is not initialised yet
    codebook.train()
    codebook.loss_terms()  # one training forward: k-means initialises the codebook
    codebook.eval()
    assert tokenizer.selects_rows
    with torch.no_grad():
        restricted = codebook._class_accuracy("val")
        c, val = codebook.observed, codebook.local["val"]  # the full forward, to compare
        full = tokenizer.class_logits(tokenizer(c.x, c.adj_t).quantized, c.adj_t)[val]
        expected = (full.argmax(-1) == c.y[val]).float().mean()
    torch.testing.assert_close(restricted, expected)


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


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
@pytest.mark.parametrize("gather_dtype", ["float32", "bfloat16"])
def test_on_a_gpu_rows_and_the_stored_transpose_agree_with_pygs(gather_dtype):
    """The products teacher's options on cuSPARSE: restricted rows and the stored-transpose
    backward give PyG's values and gradients (bf16 gathers: to bf16 rounding)."""
    torch.manual_seed(0)
    kwargs = dict(dropout=0.0, norm="batch_norm", root_weight=False)
    pyg = PyGGraphSAGE(12, 32, 3, 5, **kwargs).cuda()
    ours = GraphSAGE(
        12, 32, 3, 5, stored_transpose=True, gather_dtype=gather_dtype, **kwargs
    ).cuda()  # fmt: skip
    ours.load_state_dict(pyg.state_dict())
    x, edge_index = graph(400)
    x = x.cuda()
    adj = sparse_adjacency(edge_index.cuda(), x.size(0), self_loops=True)
    rows = torch.arange(0, 400, 7, device="cuda")
    tolerance = 1e-4 if gather_dtype == "float32" else 5e-2
    expected, got = pyg(x, adj)[rows], ours(x, adj, rows=rows)
    torch.testing.assert_close(got, expected, atol=tolerance, rtol=tolerance)
    expected.square().sum().backward()
    got.square().sum().backward()
    for (name, a), b in zip(pyg.named_parameters(), ours.parameters(), strict=True):
        torch.testing.assert_close(b.grad, a.grad, atol=tolerance * 10, rtol=tolerance, msg=name)
    pyg.eval(), ours.eval()
    with torch.no_grad():
        torch.testing.assert_close(
            ours(x, adj, rows=rows), pyg(x, adj)[rows], atol=tolerance, rtol=tolerance
        )
