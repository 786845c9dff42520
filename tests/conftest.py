"""Shared fixtures: tiny graphs, config composition and access to real benchmark files."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

from g2m import api
from g2m.data.splits import CPFSplit, make_split
from g2m.data.synthetic import make_csbm

FAST = ["logger=none", "trainer.enable_progress_bar=false", "trainer.accelerator=cpu"]


def load_script(path: Path):
    """Import a script (an experiment's probe, not part of the package) as a module."""
    import importlib.util

    path = Path(path)
    spec = importlib.util.spec_from_file_location(path.stem, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def compose_config(overrides: list[str]):
    """The real shipped config, composed as ``python -m g2m.train`` would."""
    return api.compose_config(overrides)[0]


def load_catalog(option: str, cache: Path, data_dir: Path | None = None, *overrides: str):
    """The checked graph of a shipped dataset option, staged into ``cache``."""
    from g2m.data.source import DataLocation
    from g2m.run.build import build_node

    source = build_node(compose_config([f"dataset={option}", *overrides]).dataset, "dataset")
    return source.load(DataLocation(Path(cache), Path(data_dir) if data_dir else None))


def cpf_split(graph, seed: int = 0, held_out: float = 0.0, train: int = 5, val: int = 5):
    """A CPF split of a small graph (``train``/``val`` nodes per class)."""
    return make_split(graph, CPFSplit("cpf", train, val), seed, held_out)


def tiny_overrides(cache: Path, *extra: str) -> list[str]:
    """A small synthetic run that trains in seconds."""
    return FAST + [
        "dataset=synthetic",
        "dataset.generator.num_nodes=300",
        "dataset.generator.num_features=16",
        "dataset.generator.num_classes=3",
        "split.train_per_class=10",
        "split.val_per_class=10",
        "teacher.max_epochs=30",
        "teacher.patience=10",
        "student.max_epochs=30",
        "student.patience=10",
        f"paths.cache_dir={cache}",
        *extra,
    ]


@pytest.fixture
def tiny_graph():
    return make_csbm(num_nodes=120, num_classes=3, num_features=8, avg_degree=4, seed=1)


@pytest.fixture(scope="session")
def data_dir() -> Path:
    """The folder of real raw files (``$G2M_DATA_DIR``); tests needing it skip without it."""
    value = os.environ.get("G2M_DATA_DIR")
    if not value or not Path(value).is_dir():
        pytest.skip("real-data test: set G2M_DATA_DIR to a folder in PyG's raw layout")
    return Path(value)


@pytest.fixture(scope="session")
def cache_dir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("g2m-cache")


@pytest.fixture(autouse=True)
def _torch_threads():
    torch.manual_seed(0)
    yield


@pytest.fixture(autouse=True)
def _own_artifact_store(tmp_path_factory, monkeypatch):
    """Each test has its own artifact store (subprocesses inherit it), so that no test
    reuses a teacher another test trained unless it means to."""
    monkeypatch.setenv("G2M_STORE_DIR", str(tmp_path_factory.mktemp("store")))
