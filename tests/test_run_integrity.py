"""A run never reports a result it did not compute (issue: reliability, round two).

Run directories belong to one config; artifacts record what made them; every RNG a stage
draws from resumes; signals stop a run with a non-zero status; a moved run directory
resumes; a swapped cache file is replaced; two runs never write one directory at once.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import lightning.pytorch as pl
import numpy as np
import pytest
import torch
import yaml

from g2m.cli import one_line_error
from g2m.data.files import BenchmarkFile, file_sha256
from g2m.data.source import DataLocation
from g2m.errors import ArtifactError, ConfigError, DiskFullError
from g2m.io import atomic_torch_save
from g2m.run import pipeline
from g2m.run.build import build_run
from g2m.run.rundir import config_differences, locked_run_dir
from g2m.run.settings import deterministic_kernels
from tests.conftest import compose_config, tiny_overrides
from tests.test_reliability import cli

TEACHER_ONLY_DIFFERENT = ("teacher=gcn", "seed=1", "loss=supervised")


def one_error_line(stderr: str) -> str:
    lines = [line for line in stderr.splitlines() if line.startswith("g2m: error:")]
    assert len(lines) == 1 and "Traceback" not in stderr, stderr[-2000:]
    return lines[0]


# --- 1. a finished run of another config is not reported as this run -------------------


@pytest.mark.slow
def test_a_finished_run_of_another_config_is_refused_and_left_as_it_was(tmp_path, cache_dir):
    run_dir = tmp_path / "R"
    first = cli(tiny_overrides(cache_dir, f"hydra.run.dir={run_dir}"))
    assert first.returncode == 0, first.stderr[-2000:]
    before = {p: p.read_bytes() for p in run_dir.rglob("*") if p.is_file()}

    other = cli(tiny_overrides(cache_dir, *TEACHER_ONLY_DIFFERENT, f"hydra.run.dir={run_dir}"))
    assert other.returncode == 2
    line = one_error_line(other.stderr)
    assert "holds a run of another config" in line and "overwrite=true" in line
    assert "seed: 0 -> 1" in line and "teacher.name: 'sage' -> 'gcn'" in line
    after = {p: p.read_bytes() for p in run_dir.rglob("*") if p.is_file()}
    assert after == before  # not even Hydra's .hydra/config.yaml was rewritten

    again = cli(
        tiny_overrides(cache_dir, "trainer.enable_progress_bar=false", f"hydra.run.dir={run_dir}")
    )
    assert again.returncode == 0 and "already complete" in again.stdout  # a neutral key

    fresh = cli(
        tiny_overrides(
            cache_dir, *TEACHER_ONLY_DIFFERENT, "overwrite=true", f"hydra.run.dir={run_dir}"
        )
    )
    assert fresh.returncode == 0, fresh.stderr[-2000:]
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert metrics["seed"] == 1 and metrics["student"]["loss"] == "supervised"
    assert "teacher" not in metrics


def test_resuming_an_interrupted_run_with_another_config_is_refused(tmp_path, cache_dir):
    """An unfinished run (its checkpoints, no metrics.json) with a changed student: refused
    before anything is touched (the API path, which the CLI's check repeats)."""
    run_dir = tmp_path / "R"
    pipeline.run(compose_config(tiny_overrides(cache_dir)), run_dir)
    (run_dir / "metrics.json").unlink()  # as if the student stage had been killed
    listing = sorted(p.name for p in run_dir.iterdir())
    changed = compose_config(
        tiny_overrides(cache_dir, "student.optim.lr=0.0001", "loss=supervised")
    )
    with pytest.raises(ConfigError, match=r"keys differ: loss.name: 'glnn' -> 'supervised'"):
        pipeline.run(changed, run_dir)
    only_lr = compose_config(tiny_overrides(cache_dir, "student.optim.lr=0.0001"))
    with pytest.raises(ConfigError, match=r"\(1 key differs: student.optim.lr: 0.01 -> 0.0001\)"):
        pipeline.run(only_lr, run_dir)
    assert sorted(p.name for p in run_dir.iterdir()) == listing


def test_neutral_keys_do_not_count_as_another_config():
    stored = {"seed": 0, "paths": {"cache_dir": "/a"}, "trainer": {"enable_progress_bar": True}}
    same = {"seed": 0, "paths": {"cache_dir": "/b"}, "trainer": {"enable_progress_bar": False}}
    assert config_differences(stored, same) == []
    assert config_differences(stored, {**same, "tag": "x"}) == ["tag: '(absent)' -> 'x'"]


@pytest.mark.slow
def test_sweep_subfolders_are_one_per_config(tmp_path, cache_dir):
    sweep = tmp_path / "sweep"
    result = cli(
        ["-m", *tiny_overrides(cache_dir, f"hydra.sweep.dir={sweep}"),
         "student.model.hidden_channels=8,16"]
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-2000:]
    folders = sorted(p for p in sweep.iterdir() if p.is_dir() and (p / "metrics.json").is_file())
    assert len(folders) == 2 and folders[0].name != folders[1].name
    widths = {
        yaml.safe_load((f / "config.yaml").read_text())["student"]["model"]["hidden_channels"]
        for f in folders
    }
    assert widths == {8, 16}


# --- 3. artifacts are checked for what produced them ------------------------------------


@pytest.fixture(scope="module")
def sage_run(tmp_path_factory):
    cache = tmp_path_factory.mktemp("cache")
    run_dir = tmp_path_factory.mktemp("sage") / "run"
    pipeline.run(compose_config(tiny_overrides(cache, "loss=vq", "codebook.max_epochs=3")), run_dir)
    return cache, run_dir


def test_a_teacher_artifact_of_another_teacher_is_refused(sage_run, tmp_path):
    cache, run_dir = sage_run
    other = tiny_overrides(cache, "teacher=gcn", f"teacher.artifact={run_dir / 'teacher.pt'}")
    with pytest.raises(ArtifactError, match=r"teacher.name='sage' \(this run: 'gcn'\)"):
        pipeline.run(compose_config(other), tmp_path / "b")
    assert not (tmp_path / "b").exists()


def test_a_teacher_artifact_from_another_graph_draw_is_refused(sage_run, tmp_path):
    cache, run_dir = sage_run
    other = tiny_overrides(
        cache, "dataset.generator.homophily=0.5", f"teacher.artifact={run_dir / 'teacher.pt'}"
    )
    with pytest.raises(ArtifactError, match="made from another graph"):
        pipeline.run(compose_config(other), tmp_path / "b")


def test_a_codebook_of_another_similarity_is_refused(sage_run, tmp_path):
    cache, run_dir = sage_run
    other = tiny_overrides(
        cache,
        "loss=vq",
        "codebook.max_epochs=3",
        "codebook.similarity=l2",
        f"codebook.artifact={run_dir / 'codebook.pt'}",
    )
    with pytest.raises(ArtifactError, match=r"codebook.similarity='cosine' \(this run: 'l2'\)"):
        pipeline.run(compose_config(other), tmp_path / "b")


def test_a_student_file_is_not_taken_for_a_teacher(sage_run, tmp_path):
    cache, run_dir = sage_run
    other = tiny_overrides(cache, f"teacher.artifact={run_dir / 'student.pt'}")
    with pytest.raises(ArtifactError, match=r"is not a g2m teacher artifact.*\(version 2\)"):
        pipeline.run(compose_config(other), tmp_path / "b")


def test_the_same_teacher_artifact_is_accepted(sage_run, tmp_path):
    cache, run_dir = sage_run
    again = tiny_overrides(cache, f"teacher.artifact={run_dir / 'teacher.pt'}")
    metrics = pipeline.run(compose_config(again), tmp_path / "b")
    assert (
        metrics["teacher"]["test_acc"]
        == json.loads((run_dir / "metrics.json").read_text())["teacher"]["test_acc"]
    )


# --- 4. kill and resume in every stage; a moved run directory -----------------------------


class StopAtEpoch(pl.Callback):
    """Interrupt the stage at the start of ``epoch`` (its earlier epochs are checkpointed)."""

    def __init__(self, epoch: int):
        self.epoch = epoch

    def on_train_epoch_start(self, trainer, module):
        if trainer.current_epoch == self.epoch:
            raise RuntimeError("interrupted for the test")


STUDENT_RESUME = ("student.batch_size=64", "student.model.dropout=0.5", "student.max_epochs=12",
                  "student.patience=12")  # fmt: skip


def test_a_moved_run_directory_resumes_to_the_uninterrupted_result(tmp_path, cache_dir):
    overrides = tiny_overrides(cache_dir, *STUDENT_RESUME)
    reference = pipeline.run(compose_config(overrides), tmp_path / "reference")
    plan = build_run(compose_config(overrides))
    with pytest.raises(RuntimeError, match="interrupted for the test"):
        pipeline.execute(plan, tmp_path / "a", student_callbacks=(StopAtEpoch(5),))
    assert (tmp_path / "a" / "checkpoints" / "student" / "last.ckpt").is_file()
    shutil.move(tmp_path / "a", tmp_path / "moved")
    resumed = pipeline.run(compose_config(overrides), tmp_path / "moved")
    assert resumed == reference


def wait_for_epochs(proc: subprocess.Popen, last: Path, epochs: int) -> None:
    """Until ``epochs`` distinct last.ckpt files were written (each epoch renames a new one)."""
    seen: set[int] = set()
    while len(seen) < epochs and proc.poll() is None:
        if last.is_file():
            with contextlib.suppress(FileNotFoundError):
                seen.add(last.stat().st_ino)
        time.sleep(0.01)
    assert proc.poll() is None, "the run finished before it could be stopped"


def start(args: list[str]) -> subprocess.Popen:
    env = {**os.environ, "PYTHONWARNINGS": "ignore"}
    env.pop("G2M_DEBUG", None)
    return subprocess.Popen(
        [sys.executable, "-m", "g2m.train", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )


def killable(cache: Path, run_dir: Path, *extra: str) -> list[str]:
    return tiny_overrides(
        cache,
        "dataset.generator.num_nodes=2000",
        "teacher.max_epochs=40",
        "teacher.patience=40",
        "student.batch_size=128",
        "student.max_epochs=40",
        "student.patience=40",
        "student.model.dropout=0.5",
        "store=false",
        f"hydra.run.dir={run_dir}",
        *extra,
    )


@pytest.mark.slow
@pytest.mark.parametrize(
    ("stage", "extra"),
    [
        ("teacher", ()),
        # the codebook stage's edge scores gather rows whose backward adds floats from
        # several threads; trainer.deterministic=cpu (the default) makes it reproducible
        ("codebook", ("loss=vq", "codebook.max_epochs=40", "codebook.patience=40")),
    ],
)
def test_sigkill_in_the_teacher_or_codebook_stage_resumes_to_the_same_metrics(
    stage, extra, tmp_path, cache_dir
):
    """The student stage's case is tests/test_reliability.py's kill-and-resume test."""
    reference = cli(killable(cache_dir, tmp_path / "reference", *extra))
    assert reference.returncode == 0, reference.stderr[-2000:]
    run_dir = tmp_path / "killed"
    proc = start(killable(cache_dir, run_dir, *extra))
    wait_for_epochs(proc, run_dir / "checkpoints" / stage / "last.ckpt", 3)
    proc.send_signal(signal.SIGKILL)
    proc.communicate()
    resumed = cli(killable(cache_dir, run_dir, *extra))
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    assert f"Resuming the {stage} stage" in (run_dir / "train.log").read_text()
    expected = json.loads((tmp_path / "reference" / "metrics.json").read_text())
    assert json.loads((run_dir / "metrics.json").read_text()) == expected


# --- 5. signals end a run with a non-zero status and one line ----------------------------


@pytest.mark.slow
@pytest.mark.parametrize(
    ("sig", "status", "name"), [(signal.SIGTERM, 143, "SIGTERM"), (signal.SIGINT, 130, "SIGINT")]
)
def test_a_signal_stops_the_run_with_its_status_and_the_run_resumes(
    sig, status, name, tmp_path, cache_dir
):
    run_dir = tmp_path / "run"
    proc = start(killable(cache_dir, run_dir))
    wait_for_epochs(proc, run_dir / "checkpoints" / "student" / "last.ckpt", 2)
    proc.send_signal(sig)
    _, stderr = proc.communicate()
    assert proc.returncode == status, stderr[-2000:]
    lines = [line for line in stderr.splitlines() if line.startswith("g2m: stopped by")]
    assert len(lines) == 1 and name in lines[0] and "Traceback" not in stderr
    assert f"hydra.run.dir={run_dir}" in lines[0]
    assert not (run_dir / "metrics.json").exists()
    resumed = cli(killable(cache_dir, run_dir))
    assert resumed.returncode == 0 and (run_dir / "metrics.json").is_file()


# --- 7. a swapped cache file is replaced ----------------------------------------------------


def write_npz(path: Path, num_nodes: int, seed: int) -> None:
    rng = np.random.default_rng(seed)
    src = np.arange(num_nodes)
    np.savez(
        path,
        x=rng.normal(size=(num_nodes, 4)).astype(np.float32),
        edge_index=np.stack([src, np.roll(src, 1)]),
        y=np.arange(num_nodes) % 2,
    )


def test_a_swapped_cache_file_is_staged_again_from_the_data_folder(tmp_path):
    data_dir, cache = tmp_path / "data", tmp_path / "cache"
    (data_dir / "G").mkdir(parents=True)
    (cache / "G").mkdir(parents=True)
    write_npz(data_dir / "G" / "graph.npz", num_nodes=40, seed=0)  # the real file
    write_npz(cache / "G" / "graph.npz", num_nodes=30, seed=1)  # another graph, same name
    source = BenchmarkFile(
        "g", "G/graph.npz", "http://unreachable.invalid/graph.npz",
        sha256=file_sha256(data_dir / "G" / "graph.npz"),
        largest_component=False, standardize_edges=False,
    )  # fmt: skip
    graph = source.load(DataLocation.from_paths(str(cache), str(data_dir)))
    assert graph.data.num_nodes == 40
    assert file_sha256(cache / "G" / "graph.npz") == file_sha256(data_dir / "G" / "graph.npz")


def test_a_source_that_is_not_the_known_file_is_refused(tmp_path):
    data_dir, cache = tmp_path / "data", tmp_path / "cache"
    (data_dir / "G").mkdir(parents=True)
    write_npz(data_dir / "G" / "graph.npz", num_nodes=30, seed=1)
    source = BenchmarkFile(
        "g", "G/graph.npz", "http://unreachable.invalid/graph.npz", sha256="0" * 64,
        largest_component=False, standardize_edges=False,
    )  # fmt: skip
    with pytest.raises(Exception, match="is not the known file"):
        source.load(DataLocation.from_paths(str(cache), str(data_dir)))
    assert not (cache / "G" / "graph.npz").exists()  # nothing wrong left in the cache


# --- run directories: one writer at a time ------------------------------------------------


def test_a_run_directory_in_use_is_refused(tmp_path, cache_dir):
    run_dir = tmp_path / "R"
    refused = pytest.raises(ConfigError, match="another g2m run is writing into")
    with locked_run_dir(run_dir), refused:  # another run holds it
        pipeline.run(compose_config(tiny_overrides(cache_dir)), run_dir)
    assert not (run_dir / "config.yaml").exists()
    pipeline.run(compose_config(tiny_overrides(cache_dir)), run_dir)  # free again: runs


@pytest.mark.slow
def test_a_second_process_into_a_busy_run_directory_is_refused_and_the_first_finishes(
    tmp_path, cache_dir
):
    run_dir = tmp_path / "R"
    first = start(killable(cache_dir, run_dir, "logger=csv"))
    wait_for_epochs(first, run_dir / "checkpoints" / "teacher" / "last.ckpt", 1)
    first.send_signal(signal.SIGSTOP)  # paused, lock held: the first cannot finish meanwhile
    try:
        second = cli(killable(cache_dir, run_dir, "logger=csv"))
    finally:
        first.send_signal(signal.SIGCONT)
    _, stderr = first.communicate()
    assert second.returncode == 2, second.stderr[-2000:]
    assert "another g2m run is writing into" in one_error_line(second.stderr)
    assert first.returncode == 0, stderr[-2000:]
    rows = (run_dir / "logs" / "teacher" / "metrics.csv").read_text().splitlines()
    header = rows[0].split(",")
    assert all(len(row.split(",")) == len(header) for row in rows)  # one writer's rows only
    assert json.loads((run_dir / "metrics.json").read_text())["student"]["test_acc"] > 0


def test_a_run_directory_that_is_a_file_is_refused(tmp_path, cache_dir):
    target = tmp_path / "file"
    target.write_text("not a folder")
    result = cli(tiny_overrides(cache_dir, f"hydra.run.dir={target}"))
    assert result.returncode == 2 and "is a file" in one_error_line(result.stderr)
    assert target.read_text() == "not a folder"


def test_global_rng_states_round_trip_through_a_checkpoint():
    from g2m.lit.safety import ResumableRNG

    class System(ResumableRNG):
        pass

    saving, checkpoint = System(), {}
    sampler = saving.stage_generator("negative_edges", 7, torch.device("cpu"))
    sampler.manual_seed(7)
    torch.randint(10, (5,), generator=sampler)
    saving.on_save_checkpoint(checkpoint)
    expected = torch.randint(10, (5,), generator=sampler)
    loading = System()
    loading.on_load_checkpoint(checkpoint)
    resumed = loading.stage_generator("negative_edges", 7, torch.device("cpu"))
    assert torch.equal(torch.randint(10, (5,), generator=resumed), expected)


# --- values that used to pass and then fail late or run something else -------------------


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (("seed=4294967296",), r"seed=4294967296: expected an integer in \[0, 2\*\*32 - 1\]"),
        (("loss=vq", "codebook.decay=2"), r"codebook.decay=2: expected a number in \(0, 1\)"),
        (("trainer.precision=foo",), "trainer.precision='foo': expected one of 32-true"),
        (("trainer=cpu", "trainer.precision=16-mixed"), "16-mixed needs a GPU"),
        (("trainer.deterministic=sometimes",), "expected true, false, warn or cpu"),
    ],
)
def test_values_that_would_fail_late_or_run_otherwise_are_refused_at_build(
    overrides, message, cache_dir
):
    with pytest.raises(ConfigError, match=message):
        build_run(compose_config(tiny_overrides(cache_dir, *overrides)))


@pytest.mark.parametrize(
    ("value", "on_cpu", "on_gpu"),
    [("cpu", True, False), (True, True, True), (False, False, False), ("warn", "warn", "warn")],
)
def test_deterministic_kernels_default_to_on_for_the_cpu_only(value, on_cpu, on_gpu):
    assert deterministic_kernels(value, on_gpu=False) == on_cpu
    assert deterministic_kernels(value, on_gpu=True) == on_gpu


def test_a_cpu_run_asks_lightning_for_deterministic_kernels(cache_dir):
    plan = build_run(compose_config(tiny_overrides(cache_dir)))
    assert plan.trainer.kwargs["deterministic"] is True
    assert plan.identity["trainer"]["deterministic"] is True


def test_a_hold_out_that_leaves_a_test_part_near_empty_is_refused(tmp_path, cache_dir):
    cfg = compose_config(
        tiny_overrides(cache_dir, "setting=inductive", "setting.held_out_fraction=0.999")
    )
    with pytest.raises(Exception, match="each part needs at least 5 nodes"):
        pipeline.run(cfg, tmp_path / "run")
    assert not (tmp_path / "run").exists()


# --- a full disk -----------------------------------------------------------------------


def test_a_full_disk_in_torch_save_is_one_error_and_leaves_the_old_file(tmp_path, monkeypatch):
    target = tmp_path / "teacher.pt"
    target.write_bytes(b"the earlier file")

    def short_write(obj, path):
        Path(path).write_bytes(b"partial")
        raise RuntimeError("[enforce fail at inline_container.cc:672] . unexpected pos 64 vs 0")

    monkeypatch.setattr("g2m.io.torch.save", short_write)
    with pytest.raises(DiskFullError, match=r"could not write .*teacher.pt: no space left"):
        atomic_torch_save({"a": 1}, target)
    assert target.read_bytes() == b"the earlier file"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["teacher.pt"]  # no temporary left


def test_a_disk_that_fills_during_a_run_stops_it_in_one_line_and_it_resumes(
    tmp_path, cache_dir, monkeypatch
):
    real_replace = os.replace

    def full_for_the_teacher(src, dst):
        if str(dst).endswith("teacher.pt"):
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        return real_replace(src, dst)

    monkeypatch.setattr("g2m.io.os.replace", full_for_the_teacher)
    run_dir = tmp_path / "run"
    cfg = compose_config(tiny_overrides(cache_dir, "store=false"))
    with pytest.raises(DiskFullError) as stopped:
        pipeline.run(cfg, run_dir)
    assert "\n" not in one_line_error(stopped.value)
    assert "run the same command again" in str(stopped.value)
    assert not (run_dir / "teacher.pt").exists() and not (run_dir / "metrics.json").exists()
    assert not list(run_dir.rglob("*.tmp"))
    monkeypatch.setattr("g2m.io.os.replace", real_replace)  # space freed
    assert pipeline.run(cfg, run_dir) == pipeline.run(cfg, tmp_path / "uninterrupted")


def test_a_teacher_artifact_keeps_its_weights_and_an_older_one_still_loads(sage_run, tmp_path):
    """Version 2 stores the teacher's weights (KRD's reliability stage runs it again); a
    version-1 file, without them, is still a teacher artifact for every other run."""
    from g2m.run.artifacts import TeacherArtifact

    _, run_dir = sage_run
    artifact = TeacherArtifact.load(run_dir / "teacher.pt")
    assert artifact.model_state and all(k.startswith("gnn.") for k in artifact.model_state)
    old = torch.load(run_dir / "teacher.pt", weights_only=True)
    old["version"] = 1
    del old["model_state"]
    torch.save(old, tmp_path / "v1.pt")
    loaded = TeacherArtifact.load(tmp_path / "v1.pt")
    assert loaded.model_state is None and torch.equal(loaded.logits, artifact.logits)
