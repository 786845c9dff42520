"""The Python API: g2m.distill on a graph in memory, the top-level exports, the README's example."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from torch import nn

import g2m
from g2m.data.synthetic import make_csbm
from g2m.errors import ConfigError
from tests.conftest import FAST

README = Path(__file__).resolve().parents[1] / "README.md"
SMALL = [*FAST, "teacher.max_epochs=20", "student.max_epochs=20", "teacher.patience=10"]


@pytest.mark.slow
def test_distill_a_graph_built_in_memory(tmp_path, cache_dir):
    data = make_csbm(num_nodes=300, num_classes=3, num_features=16, seed=4)
    run = g2m.distill(
        data,
        teacher="gcn",
        loss="glnn",
        split="ratio",
        seed=1,
        name="mine",
        overrides=[*SMALL, "student.model.hidden_channels=32", f"paths.cache_dir={cache_dir}"],
        run_dir=tmp_path / "run",
    )
    assert run.metrics == json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert (run.metrics["dataset"], run.metrics["split"], run.metrics["seed"]) == (
        "mine",
        "ratio",
        1,
    )
    assert run.metrics["teacher"]["name"] == "gcn"
    student = run.student
    assert isinstance(student, nn.Module) and not student.training
    assert student.init_args["hidden_channels"] == 32
    assert student(data.x).shape == (300, 3)
    model, meta = g2m.load_student(run.student_path)
    torch.testing.assert_close(model(data.x), student(data.x))
    assert meta["classes"] == ["0", "1", "2"]
    assert "mine (ratio)" in repr(run)
    assert run.student_inputs(data.x) is data.x  # no positions: the features themselves


@pytest.mark.slow
def test_a_nosmog_run_hands_its_student_features_and_positions(tmp_path, cache_dir):
    data = make_csbm(num_nodes=200, num_classes=3, num_features=12, seed=5)
    run = g2m.distill(data, loss="nosmog", split="ratio", seed=0,
                      overrides=[*SMALL, "positions.channels=6", f"paths.cache_dir={cache_dir}"],
                      run_dir=tmp_path / "run")  # fmt: skip
    inputs = run.student_inputs(data.x)
    assert inputs.shape == (200, 18) and torch.equal(inputs[:, :12], data.x)
    assert run.student(inputs).shape == (200, 3)


def test_distill_resumes_into_the_same_run_dir(tmp_path, cache_dir, capsys):
    data = make_csbm(num_nodes=200, num_classes=3, num_features=8, seed=2)
    kwargs = dict(split="ratio", overrides=[*SMALL, f"paths.cache_dir={cache_dir}"])
    first = g2m.distill(data, run_dir=tmp_path, **kwargs)
    again = g2m.distill(data, run_dir=tmp_path, **kwargs)
    assert again.metrics == first.metrics
    assert "already complete" in capsys.readouterr().out


@pytest.mark.slow
def test_distill_takes_a_shipped_dataset_by_name(tmp_path, cache_dir):
    overrides = [*SMALL, "dataset.generator.num_nodes=200", f"paths.cache_dir={cache_dir}"]
    run = g2m.distill("synthetic", split="ratio", overrides=overrides, run_dir=tmp_path)
    assert run.metrics["dataset"] == "synthetic"


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ("no-such-dataset", "neither a dataset g2m knows"),
        (42, "must be a PyG Data"),
    ],
)
def test_distill_refuses_what_is_not_a_graph(data, message, tmp_path):
    with pytest.raises(ConfigError, match=message):
        g2m.distill(data, run_dir=tmp_path / "run")
    assert not (tmp_path / "run").exists()


def test_an_unknown_option_is_one_config_error():
    with pytest.raises(ConfigError, match=r"Could not find 'teacher/gin'\. Available options: "):
        g2m.distill(make_csbm(num_nodes=50, num_classes=2), teacher="gin")


@pytest.mark.slow
def test_the_command_line_refuses_the_memory_dataset(tmp_path):
    from g2m.run import pipeline
    from tests.conftest import compose_config

    with pytest.raises(ConfigError, match="dataset=file dataset.path=graph.pt"):
        pipeline.run(compose_config(["dataset=memory", *FAST]), tmp_path / "run")
    result = subprocess.run(
        [sys.executable, "-m", "g2m.train", "dataset=memory", f"hydra.run.dir={tmp_path / 'cli'}"],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 2 and "dataset=file dataset.path=graph.pt" in result.stderr
    assert not (tmp_path / "cli").exists()
    assert not (tmp_path / "run").exists()


def test_load_dataset_shows_what_the_checks_make_of_a_graph():
    data = make_csbm(num_nodes=60, num_classes=2, num_features=4, seed=0)
    data.y = torch.where(data.y == 1, torch.tensor(7), torch.tensor(3))
    loaded = g2m.load_dataset(data)
    assert loaded.classes == ["3", "7"] and set(loaded.data.y.tolist()) == {0, 1}
    assert any("remapped" in note for note in loaded.notes)


def test_the_top_level_exports_resolve_lazily():
    for name in ("distill", "Run", "load_dataset", "load_student", "StudentInference"):
        assert getattr(g2m, name) is not None
    with pytest.raises(AttributeError):
        g2m.no_such_thing  # noqa: B018


def readme_example() -> str:
    """The first Python block of the README's "Your own graph" section."""
    section = README.read_text().split("## Your own graph", 1)[1]
    return re.search(r"```python\n(.*?)```", section, re.S).group(1)


@pytest.mark.slow
def test_the_readme_example_runs(tmp_path, monkeypatch, cache_dir):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("G2M_CACHE_DIR", str(cache_dir))
    namespace: dict = {}
    exec(compile(readme_example(), "README.md", "exec"), namespace)  # noqa: S102
    run = namespace["run"]
    assert (tmp_path / run.run_dir / "metrics.json").is_file()
    assert run.metrics["student"]["test_acc"] > 0.5
