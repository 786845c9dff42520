"""Every shipped YAML composes with the real config and instantiates what it describes."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import lightning.pytorch as pl
import pytest
import torch

import g2m
from g2m.data.catalog import LOADERS
from g2m.lit.distributed import single_device, student_trainer_kwargs
from g2m.models import GNNTeacher
from g2m.run.stages import build, build_objective
from tests.conftest import compose_config

CONFIGS = Path(g2m.__file__).parent / "configs"


def options(group: str) -> list[str]:
    return sorted(p.stem for p in (CONFIGS / group).glob("*.yaml"))


def test_every_group_has_options():
    for group in ("dataset", "teacher", "student", "loss", "setting", "trainer", "logger"):
        assert options(group), group


@pytest.mark.parametrize("option", options("dataset"))
def test_dataset_configs_name_a_known_dataset_and_protocol(option):
    ds = compose_config([f"dataset={option}"]).dataset
    assert ds.name == option
    assert "generator" in ds or (ds.name, ds.split) in LOADERS


@pytest.mark.parametrize("option", options("teacher"))
def test_teacher_configs_instantiate(option, tiny_graph):
    t = compose_config([f"teacher={option}"]).teacher
    teacher = GNNTeacher(build(t.model, in_channels=8, out_channels=3), self_loops=t.self_loops)
    adj = teacher.adjacency(tiny_graph.edge_index, tiny_graph.num_nodes)
    assert teacher(tiny_graph.x, adj).shape == (120, 3)
    assert t.name == option and t.optim.lr > 0


@pytest.mark.parametrize("option", options("student"))
def test_student_configs_instantiate(option):
    s = compose_config([f"student={option}"]).student
    assert build(s.model, in_channels=8, out_channels=3)(torch.randn(4, 8)).shape == (4, 3)


@pytest.mark.parametrize("option", options("loss"))
def test_loss_configs_instantiate(option):
    loss = compose_config([f"loss={option}"]).loss
    objective = build_objective(loss)
    assert objective.name == loss.name == option


@pytest.mark.parametrize("option", options("logger"))
def test_logger_configs_instantiate(option, tmp_path):
    node = compose_config([f"logger={option}"]).logger
    if option == "none":
        assert not node
        return
    logger = build(node, save_dir=str(tmp_path))
    assert logger is not None


@pytest.mark.parametrize("option", options("trainer"))
def test_trainer_configs_instantiate(option):
    config = dict(compose_config([f"trainer={option}"]).trainer)
    if config["accelerator"] == "gpu" and not torch.cuda.is_available():
        pytest.skip("GPU trainer config needs a CUDA device")
    config.pop("enable_progress_bar")
    for kwargs in (student_trainer_kwargs(config), single_device(config)):  # as the stages do
        trainer = pl.Trainer(logger=False, **kwargs)
        assert trainer.precision == config["precision"]
        if config["accelerator"] == "cpu":
            assert trainer.strategy.root_device.type == "cpu"


@pytest.mark.parametrize("option", options("setting"))
def test_setting_configs(option):
    setting = compose_config([f"setting={option}"]).setting
    assert setting.name == option and 0.0 <= setting.held_out_fraction < 1.0


@pytest.mark.parametrize("path", sorted((CONFIGS / "tuned").rglob("*.yaml")))
def test_tuned_configs_apply_to_their_dataset(path):
    dataset, model = path.stem.rsplit("_", 1)
    group = path.parent.name
    cfg = compose_config([f"dataset={dataset}", f"{group}={model}"])
    base = compose_config(["dataset=synthetic", f"{group}={model}"])
    changed = [key for key in cfg if key != "dataset" and cfg[key] != base[key]]
    assert changed, f"{path} changes nothing"


def test_unknown_option_lists_the_valid_choices():
    result = subprocess.run(
        [sys.executable, "-m", "g2m.train", "dataset=nope"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode != 0
    assert "Could not find 'dataset/nope'" in result.stderr
    assert "cora" in result.stderr and "a-photo" in result.stderr
