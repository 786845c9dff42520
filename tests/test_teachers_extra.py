"""The propagation teachers (APPNP, SGC, GCNII), sage-root, and the label-only baseline with
its warning where the graph hurts the teacher."""

from __future__ import annotations

import json
import logging
from math import log

import pytest
import torch
from torch_geometric.data import Data
from torch_geometric.utils import to_dense_adj

from g2m.errors import ConfigError
from g2m.models import GNNTeacher
from g2m.models.propagation import GCNII, SGC, APPNPNet, LastAdjacency, normalized
from g2m.models.teacher import sparse_adjacency
from g2m.report.tables import summarise, to_markdown
from g2m.run import pipeline
from g2m.run.baseline import compare, train_label_only
from g2m.run.build import RunModels, build_run
from g2m.run.settings import StageSchedule
from tests.conftest import FAST, compose_config, cpf_split, tiny_overrides

NEW_TEACHERS = ["appnp", "sgc", "gcnii", "sage-root"]
WARNING = "below a label-only MLP"


def messy_graph(num_nodes: int = 30, num_features: int = 8) -> tuple[torch.Tensor, torch.Tensor]:
    """Directed random edges, duplicates and a few self-loops (as WebKB has)."""
    gen = torch.Generator().manual_seed(0)
    edge_index = torch.randint(0, num_nodes, (2, 90), generator=gen)
    loops = torch.tensor([[3, 4, 5], [3, 4, 5]])
    return torch.randn(num_nodes, num_features, generator=gen), torch.cat([edge_index, loops], 1)


def dense_a_hat(edge_index: torch.Tensor, num_nodes: int) -> torch.Tensor:
    """``D^-1/2 (A + I) D^-1/2`` as a dense ``[target, source]`` matrix, one loop per node."""
    a_t = to_dense_adj(edge_index, max_num_nodes=num_nodes)[0].clamp(max=1).t().clone()
    a_t.fill_diagonal_(1.0)
    d = a_t.sum(1).pow(-0.5)
    return d[:, None] * a_t * d[None]


def models() -> dict[str, torch.nn.Module]:
    torch.manual_seed(0)
    return {
        "appnp": APPNPNet(8, 16, 3, num_layers=2, K=10, alpha=0.1, dropout=0.5),
        "sgc": SGC(8, 3, K=2),
        "gcnii": GCNII(8, 16, 3, num_layers=4, alpha=0.1, theta=0.5, dropout=0.6),
    }


def reference(name: str, model: torch.nn.Module, x: torch.Tensor, a: torch.Tensor):
    """The paper's formula with a dense A-hat and the model's own weights."""
    if name == "sgc":
        return model.conv.lin(a @ a @ x)
    if name == "appnp":
        h = z = model.mlp(x)
        for _ in range(10):
            z = 0.9 * a @ z + 0.1 * h
        return z
    h = h0 = model.input_layer(x).relu()
    for layer, conv in enumerate(model.convs, start=1):
        beta = log(0.5 / layer + 1)
        s = 0.9 * a @ h + 0.1 * h0
        h = ((1 - beta) * s + beta * s @ conv.weight1).relu()
    return model.head(h)


@pytest.mark.parametrize("name", ["appnp", "sgc", "gcnii"])
def test_sparse_adjacency_and_edge_list_give_the_papers_propagation(name):
    x, edge_index = messy_graph()
    model = models()[name].eval()
    teacher = GNNTeacher(model)
    with torch.no_grad():
        from_edges = teacher(x, edge_index)
        for self_loops in (False, True):  # a loop already there is not added twice
            adj = sparse_adjacency(edge_index, 30, self_loops=self_loops)
            torch.testing.assert_close(teacher(x, adj), from_edges, rtol=0, atol=1e-6)
        expected = reference(name, model, x, dense_a_hat(edge_index, 30))
    torch.testing.assert_close(from_edges, expected, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize(
    ("name", "width"), [("appnp", 16), ("sgc", 8), ("gcnii", 16), ("appnp-linear", 8)]
)
def test_embedding_is_the_output_layers_input(name, width):
    x, edge_index = messy_graph()
    model = (
        APPNPNet(8, 16, 3, num_layers=1, K=2, alpha=0.1, dropout=0.0)
        if name == "appnp-linear"
        else models()[name]
    )
    teacher = GNNTeacher(model).eval()
    adj = sparse_adjacency(edge_index, 30)
    logits, embedding = teacher(x, adj, return_embedding=True)
    assert logits.shape == (30, 3)
    assert embedding.shape == (30, width) and teacher.embedding_channels == width
    out = model.output_layer(embedding)
    if isinstance(model, APPNPNet):  # APPNP propagates after its output layer
        out = model.propagation(out, normalized(adj, 30))
    torch.testing.assert_close(out, logits)


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda: SGC(8, 3, K=0), "K must be"),
        (lambda: APPNPNet(8, 16, 3, 2, K=10, alpha=1.5, dropout=0.5), "alpha"),
        (lambda: GCNII(8, 16, 3, 4, alpha=0.1, theta=0.0, dropout=0.5), "theta"),
        (lambda: GNNTeacher(torch.nn.Linear(8, 3)), "neither a PyG BasicGNN"),
    ],
)
def test_bad_propagation_arguments_are_config_errors(make, message):
    with pytest.raises(ConfigError, match=message):
        make()


def test_the_normalised_adjacency_is_built_once_per_adjacency_tensor(tiny_graph):
    built = []
    cache = LastAdjacency(lambda adj, n: built.append(adj) or normalized(adj, n))
    first, second = tiny_graph.edge_index, tiny_graph.edge_index.clone()
    once = cache(first, tiny_graph.num_nodes)
    assert cache(first, tiny_graph.num_nodes) is once and len(built) == 1  # epoch after epoch
    again = cache(second, tiny_graph.num_nodes)  # another tensor (the full graph, say)
    assert len(built) == 2 and again is not once
    torch.testing.assert_close(again.to_dense(), once.to_dense())
    model = GCNII(8, 16, 3, num_layers=2, alpha=0.1, theta=0.5, dropout=0.0).eval()
    cached = (model(tiny_graph.x, first), model(tiny_graph.x, first))  # built, then reused
    torch.testing.assert_close(cached[1], cached[0])
    torch.testing.assert_close(model(tiny_graph.x, second), cached[0])  # built afresh


@pytest.mark.parametrize("teacher", ["appnp", "sgc", "gcnii"])
def test_vq_is_refused_with_a_propagation_teacher(teacher):
    plan = build_run(compose_config(["loss=vq", f"teacher={teacher}", *FAST]))
    with pytest.raises(ConfigError, match="must be a PyG BasicGNN") as err:
        RunModels(plan, num_features=8, num_classes=3).check()
    assert "\n" not in str(err.value) and f"teacher={teacher}" in str(err.value)


def test_vq_accepts_sage_root():
    plan = build_run(compose_config(["loss=vq", "teacher=sage-root", *FAST]))
    RunModels(plan, num_features=8, num_classes=3).check()


def test_the_baseline_selects_on_validation_and_leaves_the_rng_alone(tiny_graph):
    split = cpf_split(tiny_graph, train=10, val=10)
    schedule = StageSchedule("student", 0.01, 0.0, 200, 20)

    def make():
        return torch.nn.Sequential(torch.nn.Linear(8, 16), torch.nn.ReLU(), torch.nn.Linear(16, 3))

    state = torch.get_rng_state()
    args = (make, tiny_graph.x, tiny_graph.y, split, schedule, "latest", 3, torch.device("cpu"))
    block, seconds = train_label_only(*args)
    assert torch.equal(torch.get_rng_state(), state)
    assert block == train_label_only(*args)[0]  # its own seed: the same again
    assert block["best_epoch"] < block["epochs"] <= 200 and seconds >= 0
    assert 1 / 3 < block["val_acc"] <= 1 and 0 <= block["test_acc"] <= 1


def test_compare_gives_the_gain_and_warns_only_below(caplog):
    metrics = {"teacher": {"val_acc": 0.5}, "student": {"val_acc": 0.6, "test_acc": 0.7}}
    baseline = {"val_acc": 0.55, "test_acc": 0.6}
    with caplog.at_level("WARNING", logger="g2m"):
        keys = compare(metrics, baseline, "sage")
    assert keys["teacher_below_baseline"] is True
    assert keys["distillation_gain"] == pytest.approx({"val": 0.05, "test": 0.1})
    assert caplog.text.count(WARNING) == 1 and "teacher=sage-root" in caplog.text
    caplog.clear()
    with caplog.at_level("WARNING", logger="g2m"):
        compare(metrics, baseline, "sage-root")  # no advice to use what it already uses
    assert caplog.text.count(WARNING) == 1 and "loss=supervised" in caplog.text
    caplog.clear()
    metrics["teacher"]["val_acc"] = 0.55  # a tie is not below
    with caplog.at_level("WARNING", logger="g2m"):
        assert compare(metrics, baseline, "sage")["teacher_below_baseline"] is False
    assert WARNING not in caplog.text


def test_the_report_shows_the_baseline_and_the_gain():
    run = {
        "dataset": "texas",
        "setting": "transductive",
        "seed": 0,
        "teacher": {"name": "sage", "val_acc": 0.5},
        "student": {"name": "mlp", "loss": "glnn", "val_acc": 0.5, "test_acc": 0.55},
        "baseline": {"val_acc": 0.7, "test_acc": 0.75},
        "distillation_gain": {"val": -0.2, "test": -0.2},
        "path": "r",
        "timings": {},
    }
    table = to_markdown(summarise([run], ["dataset"]), ["dataset"])
    assert "baseline test" in table and "gain test" in table and "-20.00" in table


def ring(num_nodes: int, heterophilous: bool, signal: float) -> Data:
    """A ring of 3 classes with class-centred features. Heterophilous: labels cycle along it
    (i mod 3), so self + neighbours hold one node of each class and their mean carries no
    class at all; homophilous: three contiguous arcs."""
    gen = torch.Generator().manual_seed(0)
    ids = torch.arange(num_nodes)
    y = ids % 3 if heterophilous else ids * 3 // num_nodes
    x = signal * torch.nn.functional.one_hot(y, 3).float().repeat(1, 4)
    x = x + torch.randn(num_nodes, 12, generator=gen)
    edge_index = torch.stack([ids, (ids + 1) % num_nodes])
    return Data(x=x, edge_index=torch.cat([edge_index, edge_index.flip(0)], 1), y=y)


def ring_overrides(cache, *extra: str) -> list[str]:
    return [
        *FAST,
        "dataset=memory",
        "split.train_per_class=10",
        "split.val_per_class=20",
        "teacher.max_epochs=60",
        "student.max_epochs=60",
        f"paths.cache_dir={cache}",
        *extra,
    ]


@pytest.mark.slow
@pytest.mark.parametrize(("heterophilous", "signal"), [(True, 1.5), (False, 0.5)])
def test_the_warning_fires_where_the_graph_hurts_the_teacher(
    heterophilous, signal, tmp_path, caplog
):
    cfg = compose_config(ring_overrides(tmp_path / "cache"))
    with caplog.at_level("WARNING", logger="g2m"):
        metrics = pipeline.run(cfg, tmp_path / "run", data=ring(300, heterophilous, signal))
    teacher, baseline = metrics["teacher"], metrics["baseline"]
    assert metrics["teacher_below_baseline"] is heterophilous
    assert (teacher["val_acc"] < baseline["val_acc"]) is heterophilous
    warnings = [r for r in caplog.records if WARNING in r.getMessage()]
    assert len(warnings) == (1 if heterophilous else 0)
    assert all(r.levelno == logging.WARNING and "\n" not in r.getMessage() for r in warnings)


@pytest.mark.slow
@pytest.mark.parametrize("teacher", NEW_TEACHERS)
def test_each_new_teacher_trains_end_to_end(teacher, tmp_path):
    cfg = compose_config(tiny_overrides(tmp_path / "cache", f"teacher={teacher}"))
    metrics = pipeline.run(cfg, tmp_path / "run")
    assert metrics["teacher"]["name"] == teacher and metrics["teacher"]["val_acc"] > 0.5
    assert metrics["student"]["val_acc"] > 0.5
    written = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert set(written["baseline"]) >= {"val_acc", "test_acc", "best_epoch", "epochs"}
    assert set(written["distillation_gain"]) == {"val", "test"}
    assert isinstance(written["teacher_below_baseline"], bool)
    timings = json.loads((tmp_path / "run" / "timings.json").read_text())
    assert timings["baseline_seconds"] >= 0


@pytest.mark.slow
def test_baseline_false_adds_no_keys(tmp_path):
    cfg = compose_config(tiny_overrides(tmp_path / "cache", "baseline=false"))
    metrics = pipeline.run(cfg, tmp_path / "run")
    assert not {"baseline", "distillation_gain", "teacher_below_baseline"} & set(metrics)
    assert "baseline_seconds" not in json.loads((tmp_path / "run" / "timings.json").read_text())


# ------------------------------------------------------------ Correct and Smooth


def cands(**kwargs):
    from g2m.models.decoupled import CorrectAndSmoothNet

    settings = dict(hidden_channels=16, num_layers=2, dropout=0.0, num_correction_layers=0,
                    correction_alpha=1.0, num_smoothing_layers=0, smoothing_alpha=0.8,
                    autoscale=True, scale=1.0)  # fmt: skip
    torch.manual_seed(0)
    return CorrectAndSmoothNet(8, out_channels=3, **{**settings, **kwargs})


def test_cands_without_propagation_clamps_the_training_labels_and_keeps_the_rest(tiny_graph):
    """No correction or smoothing steps: training nodes get their labels, every other node
    the base MLP's distribution; in training mode the base MLP's logits alone."""
    model = cands()
    x, y, edges = tiny_graph.x, tiny_graph.y, tiny_graph.edge_index
    mask = torch.zeros(x.size(0), dtype=torch.bool)
    mask[:20] = True
    model.attach_labels(y, mask)
    base = model.mlp(x)
    torch.testing.assert_close(model(x, edges), base)  # training mode
    model.eval()
    probs = model(x, edges).softmax(-1)
    torch.testing.assert_close(probs[mask], torch.nn.functional.one_hot(y[mask], 3).float())
    torch.testing.assert_close(probs[~mask], base.softmax(-1)[~mask], atol=1e-5, rtol=1e-5)


def test_cands_smoothing_moves_predictions_towards_labelled_neighbours():
    """A triangle 0-1-2 with a tail 2-3, node 0 labelled class 1 and a base MLP that knows
    nothing (uniform): after smoothing every node leans to class 1, the less the farther it
    is from the label (node 1 beside it, node 3 two hops away)."""
    model = cands(num_smoothing_layers=10, smoothing_alpha=0.9)
    with torch.no_grad():
        for lin in model.mlp.lins:
            lin.weight.zero_()
            lin.bias.zero_()
    pairs = torch.tensor([[0, 1], [1, 2], [0, 2], [2, 3]]).t()
    edges = torch.cat([pairs, pairs.flip(0)], 1)
    model.attach_labels(torch.tensor([1, 0, 0, 0]), torch.tensor([True, False, False, False]))
    model.eval()
    probs = model(torch.zeros(4, 8), edges).softmax(-1)
    assert probs[1, 1] > probs[3, 1] > 1 / 3
    assert torch.allclose(probs[:, 0], probs[:, 2])  # the two other classes stay alike


def test_cands_needs_its_labels_for_the_graph_it_runs_on(tiny_graph):
    model = cands().eval()
    with pytest.raises(RuntimeError, match="attach_labels"):
        model(tiny_graph.x, tiny_graph.edge_index)
    with pytest.raises(ConfigError, match="smoothing_alpha"):
        cands(smoothing_alpha=1.5)


@pytest.mark.slow
@pytest.mark.parametrize("setting", ["transductive", "inductive"])
def test_the_cands_teacher_trains_and_stores_its_artifact(setting, tmp_path):
    extra = ("teacher=cands", f"setting={setting}", "teacher.max_epochs=60", "teacher.patience=30")
    cfg = compose_config(tiny_overrides(tmp_path / "cache", *extra))
    metrics = pipeline.run(cfg, tmp_path / "run")
    assert metrics["teacher"]["name"] == "cands" and metrics["teacher"]["val_acc"] > 0.5
    artifact = torch.load(tmp_path / "run" / "teacher.pt", weights_only=True)
    observed = artifact["logits"].isfinite().all(1)
    assert bool(observed.any()) and artifact["model_state"]
    assert (setting == "inductive") == bool((~observed).any())
