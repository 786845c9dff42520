"""End to end: synthetic runs (both settings, teacher reuse, the CLI) and a real Cora run."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time

import pytest

from g2m.run import pipeline
from g2m.serve.artifact import load_student
from tests.conftest import FAST, compose_config, tiny_overrides


def check_block(block, inductive):
    for key in ("val_acc", "test_acc"):
        assert 0.0 <= block[key] <= 1.0
    if inductive:
        assert 0.0 <= block["test_acc_ind"] <= 1.0
        assert block["test_acc_prod"] == pytest.approx(
            0.8 * block["test_acc"] + 0.2 * block["test_acc_ind"]
        )
    else:
        assert "test_acc_ind" not in block


@pytest.mark.parametrize("setting", ["transductive", "inductive"])
@pytest.mark.slow
def test_synthetic_run_writes_every_output(setting, tmp_path, cache_dir, capsys):
    cfg = compose_config(tiny_overrides(cache_dir, f"setting={setting}", "logger=csv"))
    metrics = pipeline.run(cfg, tmp_path)
    on_disk = json.loads((tmp_path / "metrics.json").read_text())
    assert on_disk == metrics
    assert (on_disk["dataset"], on_disk["setting"], on_disk["seed"]) == ("synthetic", setting, 0)
    for stage in ("teacher", "student"):
        check_block(on_disk[stage], setting == "inductive")
    # the CSBM teacher and its student beat chance (1/3) by a wide margin
    assert on_disk["teacher"]["test_acc"] > 0.6 and on_disk["student"]["test_acc"] > 0.5
    for name in (
        "config.yaml",
        "teacher.pt",
        "student.pt",
        "logs/teacher/metrics.csv",
        "logs/student/metrics.csv",
        "checkpoints/student/best.ckpt",
    ):
        assert (tmp_path / name).is_file(), name
    assert not list(tmp_path.glob("**/*.tmp"))
    assert "student (mlp, glnn)" in capsys.readouterr().out
    model, meta = load_student(tmp_path / "student.pt")
    provenance = meta["provenance"]
    assert provenance["dataset"] == "synthetic" and provenance["loss"] == "glnn"
    assert provenance["student_metrics"]["test_acc"] == on_disk["student"]["test_acc"]
    assert set(provenance) >= {"teacher", "g2m_version", "git_revision", "teacher_metrics"}


@pytest.mark.slow
def test_student_run_reuses_a_stored_teacher(tmp_path, cache_dir):
    first = pipeline.run(compose_config(tiny_overrides(cache_dir)), tmp_path / "a")
    artifact = tmp_path / "a" / "teacher.pt"
    second_cfg = compose_config(tiny_overrides(cache_dir, f"teacher.artifact={artifact}"))
    second = pipeline.run(second_cfg, tmp_path / "b")
    assert not (tmp_path / "b" / "teacher.pt").exists()
    assert not (tmp_path / "b" / "checkpoints" / "teacher").exists()
    assert second["teacher"] == {**first["teacher"]}
    assert second["student"]["test_acc"] == pytest.approx(first["student"]["test_acc"])


def test_reusing_a_teacher_from_another_seed_is_refused(tmp_path, cache_dir):
    pipeline.run(compose_config(tiny_overrides(cache_dir)), tmp_path / "a")
    cfg = compose_config(
        tiny_overrides(cache_dir, "seed=1", f"teacher.artifact={tmp_path / 'a' / 'teacher.pt'}")
    )
    with pytest.raises(ValueError, match="different split"):
        pipeline.run(cfg, tmp_path / "b")


@pytest.mark.slow
def test_same_seed_gives_identical_metrics_on_cpu(tmp_path, cache_dir):
    a = pipeline.run(compose_config(tiny_overrides(cache_dir)), tmp_path / "a")
    b = pipeline.run(compose_config(tiny_overrides(cache_dir)), tmp_path / "b")
    for stage in ("teacher", "student"):
        for key in ("val_acc", "test_acc", "best_epoch"):
            assert a[stage][key] == b[stage][key]


def test_tensorboard_logger_writes_events(tmp_path, cache_dir):
    overrides = tiny_overrides(
        cache_dir, "logger=tensorboard", "teacher.max_epochs=3", "student.max_epochs=3"
    )
    pipeline.run(compose_config(overrides), tmp_path)
    for stage in ("teacher", "student"):
        assert list((tmp_path / "tensorboard" / stage).glob("events.out.tfevents.*"))


@pytest.mark.slow
def test_cli_runs_into_the_requested_run_dir(tmp_path, cache_dir):
    overrides = tiny_overrides(cache_dir, f"hydra.run.dir={tmp_path / 'run'}", "seed=2")
    env = {**os.environ, "PYTHONWARNINGS": "ignore"}
    result = subprocess.run(
        [sys.executable, "-m", "g2m.train", *overrides],
        capture_output=True,
        text=True,
        env=env,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert metrics["seed"] == 2
    assert "g2m | synthetic (cpf) | transductive | seed 2" in result.stdout


@pytest.mark.slow
def test_cora_glnn_end_to_end(data_dir, cache_dir, tmp_path):
    cfg = compose_config(
        FAST + ["dataset=cora", f"paths.cache_dir={cache_dir}", f"paths.data_dir={data_dir}"]
    )
    metrics = pipeline.run(cfg, tmp_path)
    assert metrics["dataset"] == "cora"
    # a working SAGE teacher and GLNN student on Cora land far above an MLP's ~59%
    assert metrics["teacher"]["test_acc"] > 0.72
    assert metrics["student"]["test_acc"] > 0.72


def wait_for_bytes(path, needles: list[bytes], still_running) -> bytes:
    """The file's bytes once every needle is in it, or once the writer is gone (then the
    caller's assertions fail with what is there): W&B's service flushes on its own time."""
    while True:
        data = path.read_bytes() if path.is_file() else b""
        if all(n in data for n in needles) or not still_running():
            return data
        time.sleep(0.1)


@pytest.mark.slow
def test_wandb_logger_runs_offline(tmp_path, cache_dir, monkeypatch):
    monkeypatch.delenv("WANDB_API_KEY", raising=False)
    monkeypatch.delenv("WANDB_SILENT", raising=False)  # g2m silences W&B itself
    overrides = tiny_overrides(
        cache_dir, "logger=wandb", "teacher.max_epochs=5", "student.max_epochs=5"
    )
    pipeline.run(compose_config(overrides), tmp_path)
    runs = list((tmp_path / "wandb").glob("offline-run-*"))
    assert len(runs) == 1
    (log_file,) = runs[0].glob("*.wandb")
    run_id = runs[0].name.rsplit("-", 1)[1]
    needles = [f"student-{run_id}".encode(), b"student/best_epoch", b"teacher/epoch"]
    service = runs[0] / "logs" / "debug-core.log"
    data = wait_for_bytes(log_file, needles, lambda: service.exists() and _writing(log_file))
    assert needles[0] in data  # the student artifact
    assert b"student/best_epoch" in data  # the selected values in the run's summary
    assert b"teacher/epoch" in data and b"student/epoch" in data  # each stage's own axis


def _writing(path, settle: float = 5.0) -> bool:
    """Whether ``path`` changed in the last ``settle`` seconds (its writer is still at it)."""
    return time.time() - path.stat().st_mtime < settle


@pytest.mark.slow
def test_fixed_split_with_unassigned_nodes_end_to_end(data_dir, cache_dir, tmp_path):
    overrides = FAST + [
        "dataset=cora-geom-gcn",
        "setting=inductive",
        f"paths.cache_dir={cache_dir}",
        f"paths.data_dir={data_dir}",
        "teacher.max_epochs=20",
        "student.max_epochs=20",
    ]
    metrics = pipeline.run(compose_config(overrides), tmp_path)
    check_block(metrics["student"], inductive=True)


PLUGIN = (
    "loss._target_=tests.plugins.smoothing.SmoothedSoftLogits",
    "+smoothing={_target_:tests.plugins.smoothing.SmoothingStage,rounds:2}",
)


@pytest.mark.slow
def test_an_objective_with_a_stage_of_its_own_needs_no_change_to_g2m(tmp_path, cache_dir, capsys):
    """The extra-stage interface: a method written outside g2m, selected by overrides alone."""
    metrics = pipeline.run(compose_config(tiny_overrides(cache_dir, *PLUGIN)), tmp_path)
    assert metrics["smoothing"]["rounds"] == 2 and 0 < metrics["smoothing"]["val_acc"] <= 1
    assert metrics["student"]["soft_labels"] == "smoothing"
    assert (tmp_path / "smoothing.pt").is_file()
    assert "smoothing (2 rounds)" in capsys.readouterr().out
    again = pipeline.run(compose_config(tiny_overrides(cache_dir, *PLUGIN)), tmp_path / "b")
    assert again["student"] == metrics["student"]  # seeded: the same student from the same stage


def test_an_extra_stage_with_a_bad_value_fails_before_anything_runs(tmp_path, cache_dir):
    overrides = tiny_overrides(cache_dir, PLUGIN[0], PLUGIN[1].replace("rounds:2", "rounds:0"))
    with pytest.raises(ValueError, match="smoothing: ValueError: rounds must be >= 1"):
        pipeline.run(compose_config(overrides), tmp_path / "run")
    assert not (tmp_path / "run").exists()
