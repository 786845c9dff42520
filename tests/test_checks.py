"""Input checks on arbitrary graphs: what is fixed (and said), what is refused (and how)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from torch_geometric.data import Data

from g2m.data.checks import prepare_graph
from g2m.data.splits import MaskSplit, RandomSplit, RatioSplit, make_split
from g2m.data.synthetic import make_csbm
from g2m.errors import DataError
from g2m.run import pipeline
from g2m.serve.artifact import load_student
from tests.conftest import FAST, compose_config, cpf_split

RUN = [*FAST, "teacher.max_epochs=10", "student.max_epochs=10", "split=ratio"]


def base_graph(num_nodes: int = 90, seed: int = 0) -> Data:
    return make_csbm(num_nodes=num_nodes, num_classes=3, num_features=6, seed=seed)


def run_on(graph: Data, tmp_path: Path, *overrides: str) -> dict:
    """A whole run on ``graph`` saved as a file (as ``dataset=file`` would read it)."""
    path = tmp_path / "graph.pt"
    torch.save(graph, path)
    cfg = compose_config(["dataset=file", f"dataset.path={path}", *RUN, *overrides])
    return pipeline.run(cfg, tmp_path / "run")


def refused(graph: Data, tmp_path: Path, message: str, *overrides: str) -> None:
    with pytest.raises(DataError, match=message):
        run_on(graph, tmp_path, *overrides)
    assert not (tmp_path / "run").exists(), "a refused run must write nothing"


# ---- fixed, and said once ----------------------------------------------------------------


def test_directed_edges_are_made_undirected(caplog):
    graph = base_graph()
    src, dst = graph.edge_index
    graph.edge_index = graph.edge_index[:, src < dst]  # one direction of each edge
    with caplog.at_level("INFO", logger="g2m"):
        clean = prepare_graph(graph, "g").data
    assert clean.edge_index.size(1) == 2 * graph.edge_index.size(1)
    assert caplog.text.count("directed edges made undirected") == 1


def test_self_loops_and_duplicate_edges_are_removed():
    graph = base_graph()
    loops = torch.arange(5).repeat(2, 1)
    graph.edge_index = torch.cat([graph.edge_index, loops, graph.edge_index[:, :7]], dim=1)
    loaded = prepare_graph(graph, "g")
    assert not bool((loaded.data.edge_index[0] == loaded.data.edge_index[1]).any())
    assert loaded.data.edge_index.size(1) == base_graph().edge_index.size(1)
    assert "removed 5 self-loops" in loaded.notes and "removed 7 duplicate edges" in loaded.notes


def test_a_clean_graph_keeps_its_edges_in_their_own_order():
    graph = base_graph()
    graph.edge_index = graph.edge_index.flip(0)  # sorted by target, as Planetoid stores them
    loaded = prepare_graph(graph, "g")
    assert torch.equal(loaded.data.edge_index, graph.edge_index) and loaded.notes == []


def test_isolated_nodes_are_kept_and_counted():
    graph = base_graph()
    graph.x = torch.cat([graph.x, torch.randn(4, 6)])
    graph.y = torch.cat([graph.y, torch.tensor([0, 1, 2, 0])])
    graph.num_nodes = 94
    loaded = prepare_graph(graph, "g")
    assert loaded.data.num_nodes == 94
    assert "4 isolated nodes (no edges): only their features inform them" in loaded.notes


@pytest.mark.parametrize("kind", ["sparse", "integer", "boolean"])
def test_sparse_integer_and_boolean_features_become_dense_float(kind):
    graph = base_graph()
    dense = (graph.x > 0).float()
    graph.x = {"sparse": dense.to_sparse(), "integer": dense.long(), "boolean": dense.bool()}[kind]
    loaded = prepare_graph(graph, "g")
    assert loaded.data.x.dtype == torch.float32 and loaded.data.x.layout == torch.strided
    assert torch.equal(loaded.data.x, dense)
    assert any("features" in note for note in loaded.notes)


def test_labels_that_are_not_contiguous_are_remapped_and_kept_in_the_student(tmp_path):
    graph = base_graph(num_nodes=150)
    graph.y = torch.tensor([3, 7, 9])[graph.y]
    loaded = prepare_graph(graph, "g")
    assert loaded.classes == ["3", "7", "9"] and sorted(loaded.data.y.unique().tolist()) == [
        0,
        1,
        2,
    ]
    assert any("remapped to 0..2" in note for note in loaded.notes)
    run_on(graph, tmp_path)
    _, meta = load_student(tmp_path / "run" / "student.pt")
    assert meta["classes"] == ["3", "7", "9"]


def test_a_label_column_of_shape_n_by_1_is_squeezed():
    graph = base_graph()
    graph.y = graph.y.view(-1, 1)
    assert prepare_graph(graph, "g").data.y.shape == (90,)


@pytest.mark.parametrize("protocol", ["cpf", "random", "ratio", "masks"])
def test_unlabelled_nodes_are_never_in_train_val_or_test(protocol):
    graph = base_graph(num_nodes=600)
    unlabelled = torch.arange(0, 600, 4)
    graph.y[unlabelled] = -1
    for key in ("train_mask", "val_mask", "test_mask"):
        graph[key] = torch.zeros(600, dtype=torch.bool)
    graph.train_mask[::3], graph.val_mask[1::3], graph.test_mask[2::3] = True, True, True
    loaded = prepare_graph(graph, "g")
    assert "150 nodes are unlabelled (y = -1): never in train, val or test" in loaded.notes
    protocols = {
        "random": RandomSplit("random", 10, 50, 100),
        "ratio": RatioSplit("ratio", 0.6, 0.2, 0.2),
        "masks": MaskSplit("masks", False),
    }
    if protocol == "cpf":
        split = cpf_split(loaded.data, train=10, val=10)
    else:
        split = make_split(loaded.data, protocols[protocol], seed=0)
    used = torch.cat([split.train, split.val, split.test])
    assert not torch.isin(used, unlabelled).any()


def test_a_graph_with_unlabelled_nodes_trains_end_to_end(tmp_path):
    graph = base_graph(num_nodes=200)
    graph.y[::5] = -1
    metrics = run_on(graph, tmp_path)
    assert 0 <= metrics["student"]["test_acc"] <= 1


# ---- refused, with one message, and nothing written ---------------------------------------


def test_multi_label_targets_are_refused(tmp_path):
    graph = base_graph()
    graph.y = torch.nn.functional.one_hot(graph.y, 3)
    refused(graph, tmp_path, r"y has shape \[90, 3\]; g2m distils single-label")


def test_float_targets_are_refused(tmp_path):
    graph = base_graph()
    graph.y = graph.y.float()
    refused(graph, tmp_path, "y is float32; g2m needs integer class ids")


def test_out_of_range_edges_are_refused(tmp_path):
    graph = base_graph()
    graph.edge_index = torch.cat([graph.edge_index, torch.tensor([[0], [90]])], dim=1)
    refused(graph, tmp_path, r"edge_index refers to node 90, but the graph has 90 nodes")


def test_negative_labels_other_than_unlabelled_are_refused(tmp_path):
    graph = base_graph()
    graph.y[0] = -3
    refused(graph, tmp_path, "label -3 is negative")


def test_non_finite_features_are_refused(tmp_path):
    graph = base_graph()
    graph.x[3, 1] = float("nan")
    refused(graph, tmp_path, "1 nodes have NaN or Inf features")


@pytest.mark.parametrize("missing", ["x", "y", "edge_index"])
def test_a_graph_without_features_labels_or_edges_is_refused(missing, tmp_path):
    graph = base_graph()
    del graph[missing]
    refused(
        graph,
        tmp_path,
        f"has no {dict(x='node features', y='labels', edge_index='edges')[missing]}",
    )


def test_a_single_class_is_refused(tmp_path):
    graph = base_graph()
    graph.y = torch.zeros(90, dtype=torch.long)
    refused(graph, tmp_path, "1 class among the labelled nodes")


def test_a_split_that_leaves_a_class_without_training_nodes_is_refused(tmp_path):
    graph = base_graph()
    graph.train_mask = graph.y != 2
    graph.val_mask = torch.zeros(90, dtype=torch.bool)
    graph.val_mask[::2] = True
    graph.train_mask &= ~graph.val_mask
    graph.test_mask = ~(graph.train_mask | graph.val_mask)
    refused(graph, tmp_path, r"leaves class\(es\) \[2\] without training nodes", "split=masks")


def test_overlapping_masks_are_refused(tmp_path):
    graph = base_graph()
    for key in ("train_mask", "val_mask", "test_mask"):
        graph[key] = torch.ones(90, dtype=torch.bool)
    refused(graph, tmp_path, "the dataset's masks overlap", "split=masks")


def test_masks_asked_of_a_graph_without_them_are_refused(tmp_path):
    refused(base_graph(), tmp_path, "this graph has no train_mask", "split=masks")


def test_a_published_split_without_a_class_in_training_only_warns(caplog):
    graph = base_graph()
    graph.train_mask = graph.y != 2
    graph.val_mask = torch.zeros(90, dtype=torch.bool)
    graph.test_mask = graph.y == 2
    graph.val_mask[graph.train_mask.nonzero().view(-1)[::2]] = True
    graph.train_mask &= ~graph.val_mask
    with caplog.at_level("WARNING", logger="g2m"):
        make_split(graph, MaskSplit("geom-gcn", True), seed=0)
    assert "a published split; kept as it is" in caplog.text


@pytest.mark.slow
def test_the_cli_refuses_bad_input_in_one_line_and_writes_nothing(tmp_path):
    graph = base_graph()
    graph.y = graph.y.float()
    path = tmp_path / "graph.pt"
    torch.save(graph, path)
    run_dir = tmp_path / "run"
    env = {**os.environ, "PYTHONWARNINGS": "ignore"}
    env.pop("G2M_DEBUG", None)
    result = subprocess.run(
        [sys.executable, "-m", "g2m.train", "dataset=file", f"dataset.path={path}", *RUN]
        + [f"hydra.run.dir={run_dir}"],
        capture_output=True,
        text=True,
        env=env,
    )
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("g2m: error: Dataset 'graph': y is float32")
    assert not run_dir.exists() or set(os.listdir(run_dir)) <= {".hydra", "train.log"}
    assert "Traceback" not in result.stderr
    assert not (run_dir / "metrics.json").exists() and not (run_dir / "config.yaml").exists()
