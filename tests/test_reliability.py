"""Bad input, divergence, interrupted runs and reproducibility (CPU)."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
import torch_geometric.data

from g2m.errors import ArtifactError, DataError, G2MError, TrainingDivergedError
from g2m.run import pipeline
from g2m.serve.artifact import load_student
from tests.conftest import compose_config, load_catalog, tiny_overrides

HYDRA_FILES = {".hydra", "train.log"}


def cli(args: list[str], **kwargs) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONWARNINGS": "ignore"}
    env.pop("G2M_DEBUG", None)
    return subprocess.run(
        [sys.executable, "-m", "g2m.train", *args],
        capture_output=True,
        text=True,
        env=env,
        **kwargs,
    )


def assert_clean_failure(result, run_dir: Path, message: str) -> None:
    """Non-zero exit, one clear message, no traceback, nothing but Hydra's own files."""
    assert result.returncode != 0
    assert message in result.stderr, result.stderr[-2000:]
    assert "Traceback" not in result.stderr
    if run_dir.exists():
        assert set(os.listdir(run_dir)) <= HYDRA_FILES, os.listdir(run_dir)


@pytest.mark.parametrize(
    ("override", "choice"),
    [
        ("dataset=pubmed", "cora"),
        ("teacher=gin", "sage"),
        ("student=kan", "mlp"),
        ("loss=vq2", "glnn"),
    ],
)
@pytest.mark.slow
def test_unknown_names_list_the_choices(override, choice, tmp_path):
    result = cli([override, f"hydra.run.dir={tmp_path / 'run'}"])
    assert_clean_failure(result, tmp_path / "run", "is not an option of the")
    assert choice in result.stderr and result.returncode == 2
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("seed=abc", "seed='abc': expected an integer"),
        ("student.model.hidden_channels=-4", "student.model: "),
        ("split.train_per_class=-1", "split.train_per_class and split.val_per_class must be"),
        ("loss.label_weight=1.5", "loss.label_weight (lambda) must be in [0, 1], got 1.5"),
        ("loss.temperature=0", "loss.temperature must be > 0, got 0"),
        ("teacher.model.num_layers=0", "teacher.model.num_layers=0"),
        ("split.train_per_class=500", "Cannot draw the split: class"),
        ("teacher.artifact=/nonexistent/teacher.pt", "not found: /nonexistent/teacher.pt"),
    ],
)
@pytest.mark.slow
def test_bad_values_exit_with_one_message(override, message, tmp_path, cache_dir):
    run_dir = tmp_path / "run"
    result = cli(tiny_overrides(cache_dir, override, f"hydra.run.dir={run_dir}"))
    assert_clean_failure(result, run_dir, message)
    assert result.returncode == 2
    assert result.stderr.strip().startswith("g2m: error:")


@pytest.mark.slow
def test_foreign_teacher_artifact_is_refused(tmp_path, cache_dir):
    foreign = tmp_path / "foreign.pt"
    torch.save({"some": "checkpoint"}, foreign)
    run_dir = tmp_path / "run"
    result = cli(
        tiny_overrides(cache_dir, f"teacher.artifact={foreign}", f"hydra.run.dir={run_dir}")
    )
    assert_clean_failure(result, run_dir, "is not a g2m teacher artifact")


def test_teacher_from_another_feature_dimension_is_refused(tmp_path, cache_dir):
    pipeline.run(compose_config(tiny_overrides(cache_dir)), tmp_path / "a")
    other = tiny_overrides(
        cache_dir,
        "dataset.generator.num_features=12",
        f"teacher.artifact={tmp_path / 'a' / 'teacher.pt'}",
    )
    with pytest.raises(ArtifactError, match="16 features \\(this run: 12\\)"):
        pipeline.run(compose_config(other), tmp_path / "b")
    assert not (tmp_path / "b").exists()


def test_missing_raw_files_offline(tmp_path, monkeypatch):
    def offline(*args, **kwargs):
        raise OSError("network is unreachable")

    monkeypatch.setattr(torch_geometric.data, "download_url", offline)
    cfg = compose_config(
        [
            "dataset=citeseer",
            f"paths.cache_dir={tmp_path / 'cache'}",
            f"paths.data_dir={tmp_path / 'nothing'}",
            "logger=none",
        ]
    )
    with pytest.raises(DataError, match="CPF_npz/citeseer.npz"):
        pipeline.run(cfg, tmp_path / "run")
    assert not (tmp_path / "run").exists()


def test_truncated_raw_file_is_named(data_dir, tmp_path):
    cache = tmp_path / "cache"
    (cache / "CPF_npz").mkdir(parents=True)
    full = (data_dir / "CPF_npz" / "cora.npz").read_bytes()
    (cache / "CPF_npz" / "cora.npz").write_bytes(full[: len(full) // 2])
    cfg = compose_config(["dataset=cora", f"paths.cache_dir={cache}", "paths.data_dir=null"])
    with pytest.raises(DataError, match="cora.npz"):
        pipeline.run(cfg, tmp_path / "run")


def test_non_finite_features_are_rejected(tmp_path):
    path = tmp_path / "cache" / "CPF_npz" / "cora.npz"
    path.parent.mkdir(parents=True)
    n = 4
    np.savez(
        path,
        adj_data=np.ones(4, np.float32),
        adj_indices=np.array([1, 0, 3, 2]),
        adj_indptr=np.array([0, 1, 2, 3, 4]),
        adj_shape=np.array([n, n]),
        attr_data=np.array([1.0, np.nan, np.inf, 2.0], np.float32),
        attr_indices=np.zeros(4, np.int64),
        attr_indptr=np.array([0, 1, 2, 3, 4]),
        attr_shape=np.array([n, 1]),
        labels=np.array([0, 1, 0, 1]),
    )
    with pytest.raises(DataError, match="NaN or Inf features"):  # the file reader's check
        load_catalog("file", tmp_path / "cache", None, f"dataset.path={path}")


def test_a_cached_benchmark_file_that_is_not_the_known_one_is_refused_offline(tmp_path):
    """Another graph under Cora's cached name, no original to stage, no network: refused,
    and the wrong file is gone from the cache."""
    path = tmp_path / "cache" / "CPF_npz" / "cora.npz"
    path.parent.mkdir(parents=True)
    np.savez(path, x=np.ones((3, 2), np.float32), edge_index=np.zeros((2, 0)), y=np.zeros(3))
    with pytest.raises(DataError, match="was not the known file"):
        load_catalog("cora", tmp_path / "cache")
    assert not path.exists()


def test_missing_or_foreign_student_artifact(tmp_path):
    with pytest.raises(FileNotFoundError, match="not found"):
        load_student(tmp_path / "nope.pt")
    foreign = tmp_path / "foreign.pt"
    foreign.write_bytes(b"\x00garbage")
    with pytest.raises(ArtifactError, match="not a readable g2m student artifact"):
        load_student(foreign)
    assert issubclass(ArtifactError, G2MError)


def test_diverging_loss_stops_and_keeps_the_last_good_checkpoint(tmp_path, cache_dir):
    cfg = compose_config(
        tiny_overrides(
            cache_dir, "student.optim.lr=1e30", "student.max_epochs=50", "student.patience=50"
        )
    )
    with pytest.raises(TrainingDivergedError, match="student training loss became"):
        pipeline.run(cfg, tmp_path)
    assert (tmp_path / "checkpoints" / "student" / "best.ckpt").is_file()
    assert (tmp_path / "teacher.pt").is_file()  # the finished teacher stage is kept
    assert not (tmp_path / "metrics.json").exists()


def resumable_overrides(cache: Path, run_dir: Path) -> list[str]:
    return tiny_overrides(
        cache,
        "dataset.generator.num_nodes=2000",
        "student.batch_size=128",
        "student.max_epochs=60",
        "student.patience=60",
        "teacher.max_epochs=20",
        "student.model.dropout=0.5",
        f"hydra.run.dir={run_dir}",
    )


@pytest.mark.slow
def test_killed_run_resumes_to_the_same_metrics(tmp_path, cache_dir):
    reference = cli(resumable_overrides(cache_dir, tmp_path / "reference"))
    assert reference.returncode == 0, reference.stderr[-2000:]

    run_dir = tmp_path / "killed"
    env = {**os.environ, "PYTHONWARNINGS": "ignore"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "g2m.train", *resumable_overrides(cache_dir, run_dir)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env=env,
    )
    last = run_dir / "checkpoints" / "student" / "last.ckpt"
    seen: set[int] = set()  # each epoch's last.ckpt is a new file (written, then renamed)
    while len(seen) < 3 and proc.poll() is None:  # wait for three student epochs, however long
        if last.is_file():
            with contextlib.suppress(FileNotFoundError):
                seen.add(last.stat().st_ino)
        time.sleep(0.01)
    assert proc.poll() is None, "the run finished before it could be killed"
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert not (run_dir / "metrics.json").exists()

    resumed = cli(resumable_overrides(cache_dir, run_dir))
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    log = (run_dir / "train.log").read_text()
    assert "Reusing teacher artifact" in log and "Resuming the student stage" in log
    expected = json.loads((tmp_path / "reference" / "metrics.json").read_text())
    assert json.loads((run_dir / "metrics.json").read_text()) == expected


def test_same_seed_gives_an_identical_metrics_file(tmp_path, cache_dir):
    for name in ("a", "b"):
        pipeline.run(compose_config(tiny_overrides(cache_dir)), tmp_path / name)
    first = (tmp_path / "a" / "metrics.json").read_bytes()
    assert first == (tmp_path / "b" / "metrics.json").read_bytes()
