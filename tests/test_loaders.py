"""Graphs from outside the catalog: a user's file, any PyG class, an OGB graph, end to end."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import urllib.error
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp
import torch
from torch_geometric.data import Data

from g2m.data import DatasetUnavailableError
from g2m.data.synthetic import make_csbm
from g2m.errors import DataError
from tests.conftest import FAST, load_catalog

SMALL = [*FAST, "teacher.max_epochs=10", "student.max_epochs=10", "split=ratio"]


def cli(args: list[str], **env: str) -> subprocess.CompletedProcess:
    environ = {**os.environ, "PYTHONWARNINGS": "ignore", **env}
    environ.pop("G2M_DEBUG", None)
    return subprocess.run(
        [sys.executable, "-m", "g2m.train", *args], capture_output=True, text=True, env=environ
    )


def small_graph(seed: int = 0) -> Data:
    return make_csbm(num_nodes=200, num_classes=3, num_features=8, seed=seed)


def sparse_graph_npz(path: Path, graph: Data) -> Path:
    """``graph`` in gnn-benchmark's SparseGraph layout (what Coauthor, Amazon, CPF read)."""
    n = graph.num_nodes
    adj = sp.csr_matrix((np.ones(graph.edge_index.size(1)), graph.edge_index.numpy()), (n, n))
    attr = sp.csr_matrix(graph.x.numpy())
    path.parent.mkdir(parents=True, exist_ok=True)
    np.savez(
        path,
        **{f"adj_{k}": getattr(adj, k) for k in ("data", "indices", "indptr")},
        adj_shape=np.array(adj.shape),
        **{f"attr_{k}": getattr(attr, k) for k in ("data", "indices", "indptr")},
        attr_shape=np.array(attr.shape),
        labels=graph.y.numpy(),
    )
    return path


@pytest.mark.parametrize("form", ["data", "dict"])
@pytest.mark.slow
def test_the_cli_trains_on_a_saved_graph(form, tmp_path, cache_dir):
    graph = small_graph()
    path = tmp_path / "my-graph.pt"
    torch.save(graph if form == "data" else {k: graph[k] for k in ("x", "edge_index", "y")}, path)
    run_dir = tmp_path / "run"
    result = cli(
        [
            "dataset=file",
            f"dataset.path={path}",
            *SMALL,
            f"paths.cache_dir={cache_dir}",
            f"hydra.run.dir={run_dir}",
        ]
    )
    assert result.returncode == 0, result.stderr[-2000:]
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert metrics["dataset"] == "my-graph" and metrics["split"] == "ratio"
    assert "g2m | my-graph (ratio)" in result.stdout


def test_npz_arrays_with_masks_and_a_sparse_adjacency(tmp_path):
    graph = small_graph()
    n = graph.num_nodes
    masks = {k: np.zeros(n, bool) for k in ("train_mask", "val_mask", "test_mask")}
    for i, key in enumerate(masks):
        masks[key][i::3] = True
    dense = tmp_path / "dense.npz"
    np.savez(
        dense, x=graph.x.numpy(), edge_index=graph.edge_index.numpy(), y=graph.y.numpy(), **masks
    )
    sparse = sparse_graph_npz(tmp_path / "sparse.npz", graph)
    for path in (dense, sparse):
        loaded = load_catalog("file", tmp_path / "cache", None, f"dataset.path={path}").data
        assert torch.equal(loaded.x, graph.x) and torch.equal(loaded.y, graph.y)
        assert torch.equal(loaded.edge_index, graph.edge_index)
    loaded = load_catalog("file", tmp_path / "cache", None, f"dataset.path={dense}").data
    assert torch.equal(loaded.train_mask, torch.from_numpy(masks["train_mask"]))


@pytest.mark.slow
def test_the_cli_trains_on_a_pyg_class_without_a_yaml(tmp_path, cache_dir):
    """Coauthor CS, staged from a local folder in PyG's raw layout (a small stand-in file)."""
    local = tmp_path / "shared"
    sparse_graph_npz(local / "CS" / "raw" / "ms_academic_cs.npz", small_graph(seed=3))
    cache, run_dir = tmp_path / "cache", tmp_path / "run"
    args = ["dataset=pyg", "dataset.cls=Coauthor", "dataset.name=CS", *SMALL]
    result = cli(
        [*args, f"paths.cache_dir={cache}", f"hydra.run.dir={run_dir}"], G2M_DATA_DIR=str(local)
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert json.loads((run_dir / "metrics.json").read_text())["dataset"] == "CS"
    assert (cache / "CS" / "raw" / "ms_academic_cs.npz").is_file()  # copied, not read in place
    assert (cache / "CS" / "processed").is_dir() and not (local / "CS" / "processed").exists()


def test_a_pyg_class_that_ships_its_data_needs_no_files(tmp_path):
    loaded = load_catalog("pyg", tmp_path / "cache", None, "dataset.cls=KarateClub")
    assert loaded.name == "KarateClub" and loaded.data.num_nodes == 34 and loaded.num_classes == 4


def test_an_offline_pyg_dataset_names_its_missing_files(tmp_path, monkeypatch):
    from torch_geometric.datasets import Coauthor

    def offline(self):
        raise urllib.error.URLError("no network")

    monkeypatch.setattr(Coauthor, "download", offline)
    with pytest.raises(DatasetUnavailableError, match="CS/raw/ms_academic_cs.npz"):
        load_catalog(
            "pyg", tmp_path / "cache", tmp_path / "empty", "dataset.cls=Coauthor", "dataset.name=CS"
        )


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (["dataset.cls=NoSuchDataset"], "dataset.cls='NoSuchDataset' is not a dataset class"),
        (["dataset.cls=Coauthor", "+dataset.kwargs.colour=red"], "Coauthor takes"),
        (["dataset.cls=Coauthor", "dataset.name=Biology"], "Coauthor(name='Biology') failed"),
    ],
)
def test_bad_pyg_settings_are_one_clear_error(overrides, message, tmp_path):
    from g2m.errors import G2MError

    with pytest.raises(G2MError, match=message.replace("(", r"\(").replace(")", r"\)")):
        load_catalog("pyg", tmp_path / "cache", tmp_path / "empty", *overrides)


def write_ogb_arxiv(root: Path, num_nodes: int = 60, num_classes: int = 3) -> dict[str, np.ndarray]:
    """A small graph in OGB's extracted ``ogbn_arxiv`` layout; returns its split ids."""
    rng = np.random.default_rng(0)
    folder = root / "ogbn_arxiv"
    (folder / "raw").mkdir(parents=True)
    (folder / "split" / "time").mkdir(parents=True)

    def csv(array, path):
        pd.DataFrame(array).to_csv(folder / path, header=False, index=False, compression="gzip")

    labels = np.arange(num_nodes) % num_classes
    edges = rng.integers(0, num_nodes, (3 * num_nodes, 2))
    csv(edges, "raw/edge.csv.gz")
    csv(np.array([[num_nodes]]), "raw/num-node-list.csv.gz")
    csv(np.array([[len(edges)]]), "raw/num-edge-list.csv.gz")
    csv(
        rng.normal(size=(num_nodes, 8)).astype(np.float32) + labels[:, None], "raw/node-feat.csv.gz"
    )
    csv(labels[:, None], "raw/node-label.csv.gz")
    csv(rng.integers(2000, 2020, (num_nodes, 1)), "raw/node_year.csv.gz")
    order = rng.permutation(num_nodes)
    parts = {"train": order[:30], "valid": order[30:45], "test": order[45:]}
    for part, ids in parts.items():
        csv(np.sort(ids)[:, None], f"split/time/{part}.csv.gz")
    (folder / "RELEASE_v1.txt").write_text("")
    return parts


@pytest.mark.slow
def test_an_ogb_graph_loads_with_its_official_split(tmp_path, cache_dir):
    pytest.importorskip("ogb")
    local = tmp_path / "shared"
    parts = write_ogb_arxiv(local)
    run_dir = tmp_path / "run"
    args = ["dataset=ogbn-arxiv", *FAST, "teacher.max_epochs=5", "student.max_epochs=5"]
    result = cli(
        [*args, f"paths.cache_dir={tmp_path / 'cache'}", f"hydra.run.dir={run_dir}"],
        G2M_DATA_DIR=str(local),
    )
    assert result.returncode == 0, result.stderr[-2000:]
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert (metrics["dataset"], metrics["split"]) == ("ogbn-arxiv", "ogb")
    loaded = load_catalog("ogbn-arxiv", tmp_path / "cache", local).data
    assert loaded.y.dim() == 1 and loaded.num_nodes == 60
    for key, part in (("train_mask", "train"), ("val_mask", "valid"), ("test_mask", "test")):
        assert sorted(loaded[key].nonzero().view(-1).tolist()) == sorted(parts[part].tolist())
    assert not (local / "ogbn_arxiv" / "processed").exists()  # the local folder is only read


def test_an_offline_ogb_graph_names_its_files_and_where_to_put_them(tmp_path, monkeypatch):
    pytest.importorskip("ogb")
    import ogb.nodeproppred.dataset_pyg as ogb_pyg

    def offline(*args, **kwargs):
        raise urllib.error.URLError("no network")

    monkeypatch.setattr(ogb_pyg, "download_url", offline)
    monkeypatch.setattr(ogb_pyg, "decide_download", lambda url: True)
    with pytest.raises(DatasetUnavailableError) as err:
        load_catalog("ogbn-arxiv", tmp_path / "cache", tmp_path / "empty")
    message = str(err.value)
    for name in (
        "ogbn_arxiv/raw/edge.csv.gz",
        "ogbn_arxiv/split/time/train.csv.gz",
        "RELEASE_v1.txt",
    ):
        assert name in message
    assert "G2M_DATA_DIR" in message
    assert not (tmp_path / "cache" / "ogbn_arxiv").exists()  # no half folder left to trip on


def test_an_ogb_dataset_g2m_cannot_train_is_refused(tmp_path):
    pytest.importorskip("ogb")
    from g2m.errors import ConfigError

    with pytest.raises(ConfigError, match="ogbn-proteins is a .*binary classification"):
        load_catalog("ogb", tmp_path, None, "dataset.name=ogbn-proteins")
    with pytest.raises(ConfigError, match="not an OGB node dataset"):
        load_catalog("ogb", tmp_path, None, "dataset.name=ogbn-nothing")


def test_a_missing_graph_file_is_named(tmp_path):
    with pytest.raises(DataError, match="Graph file not found: .*nope.pt"):
        load_catalog("file", tmp_path, None, f"dataset.path={tmp_path / 'nope.pt'}")


def test_a_garbage_processed_file_is_processed_again(tmp_path):
    local = tmp_path / "shared"
    sparse_graph_npz(local / "CS" / "raw" / "ms_academic_cs.npz", small_graph(seed=3))
    cache = tmp_path / "cache"
    args = ("dataset.cls=Coauthor", "dataset.name=CS")
    first = load_catalog("pyg", cache, local, *args)
    processed = next((cache / "CS" / "processed").glob("data*.pt"))
    processed.write_bytes(b"\x00 not a torch file")
    again = load_catalog("pyg", cache, local, *args)
    assert again.data.num_nodes == first.data.num_nodes
    assert torch.load(processed, weights_only=False) is not None  # written anew


def test_a_read_only_cache_holding_every_file_is_read_without_its_lock(tmp_path, monkeypatch):
    import errno

    from filelock import FileLock

    local = tmp_path / "shared"
    sparse_graph_npz(local / "CS" / "raw" / "ms_academic_cs.npz", small_graph(seed=3))
    cache = tmp_path / "cache"
    args = ("dataset.cls=Coauthor", "dataset.name=CS")
    first = load_catalog("pyg", cache, local, *args)

    def read_only(self, *a, **k):
        raise OSError(errno.EROFS, "Read-only file system", self.lock_file)

    monkeypatch.setattr(FileLock, "acquire", read_only)  # as root, chmod would not stop us
    again = load_catalog("pyg", cache, local, *args)
    assert again.data.num_nodes == first.data.num_nodes


def test_a_pyg_graph_that_is_not_the_expected_shape_is_refused(tmp_path):
    with pytest.raises(DataError, match=r"has 34 nodes \(expected 35\)"):
        load_catalog("pyg", tmp_path / "cache", None, "dataset.cls=KarateClub",
                     "dataset.expect={nodes: 35, classes: 4}")  # fmt: skip
    loaded = load_catalog("pyg", tmp_path / "cache", None, "dataset.cls=KarateClub",
                          "dataset.expect={nodes: 34, features: 34, classes: 4}")  # fmt: skip
    assert loaded.data.num_nodes == 34


def test_another_datasets_raw_files_under_a_catalog_name_are_refused(tmp_path, data_dir):
    # Wisconsin's WebKB files where Texas's belong: the shape facts in texas.yaml catch it
    swapped = tmp_path / "data" / "texas" / "raw"
    swapped.mkdir(parents=True)
    for source in sorted((data_dir / "wisconsin" / "raw").iterdir()):
        (swapped / source.name.replace("wisconsin", "texas")).write_bytes(source.read_bytes())
    with pytest.raises(DataError, match=r"has 251 nodes \(expected 183\).*not texas's files"):
        load_catalog("texas", tmp_path / "cache", tmp_path / "data")
