"""The artifact store: a sweep trains each teacher once, concurrent runs never both train it,
a label-only student trains none, and the switch turns it off."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from g2m.run import pipeline
from g2m.run.store import artifact_key, tensor_digest
from tests.conftest import compose_config, tiny_overrides

pytestmark = pytest.mark.slow  # every test here runs whole pipelines


def store_entries(kind: str = "teacher") -> list[Path]:
    return sorted((Path(os.environ["G2M_STORE_DIR"]) / kind).glob("*.pt"))


def trained_here(run_dir: Path) -> bool:
    return (run_dir / "checkpoints" / "teacher").is_dir()


def test_a_sweep_over_three_losses_and_three_seeds_trains_three_teachers(tmp_path, cache_dir):
    sweep = tmp_path / "sweep"
    args = tiny_overrides(cache_dir, "loss=glnn,ffg2m,supervised", "seed=0,1,2")
    result = subprocess.run(
        [sys.executable, "-m", "g2m.train", "-m", *args, f"hydra.sweep.dir={sweep}"],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    runs = sorted(p.parent for p in sweep.rglob("metrics.json"))
    assert len(runs) == 9
    assert len(store_entries()) == 3
    assert sum(trained_here(run) for run in runs) == 3
    for run in runs:
        metrics = json.loads((run / "metrics.json").read_text())
        if metrics["student"]["loss"] == "supervised":  # a label-only student: no teacher
            assert "teacher" not in metrics and not (run / "teacher.pt").exists()
        else:
            assert (run / "teacher.pt").is_file()
    # the same seed's GLNN and FF-G2M students distilled the same teacher
    by_seed: dict[int, list[dict]] = {}
    for run in runs:
        metrics = json.loads((run / "metrics.json").read_text())
        if "teacher" in metrics:
            by_seed.setdefault(metrics["seed"], []).append(metrics["teacher"])
    assert all(len(blocks) == 2 and blocks[0] == blocks[1] for blocks in by_seed.values())


def test_a_reused_teacher_is_said_in_the_log_and_gives_the_same_student(tmp_path, cache_dir):
    first = pipeline.run(compose_config(tiny_overrides(cache_dir)), tmp_path / "a")
    second_dir = tmp_path / "b"
    cmd = [
        sys.executable,
        "-m",
        "g2m.train",
        *tiny_overrides(cache_dir),
        f"hydra.run.dir={second_dir}",
    ]
    result = subprocess.run(cmd, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr[-2000:]
    log = (second_dir / "train.log").read_text()
    assert "Reusing teacher artifact" in log and "from the store" in log
    assert not trained_here(second_dir)
    second = json.loads((second_dir / "metrics.json").read_text())
    assert second == first  # the same teacher, the same seeded student
    assert json.loads((second_dir / "timings.json").read_text())["reused_from_store"] == ["teacher"]


def test_two_runs_that_need_the_same_missing_teacher_train_it_once(tmp_path, cache_dir):
    env = {**os.environ, "PYTHONWARNINGS": "ignore"}
    runs = [tmp_path / f"run{i}" for i in range(2)]
    procs = [
        subprocess.Popen(
            [sys.executable, "-m", "g2m.train", *tiny_overrides(cache_dir), f"hydra.run.dir={r}"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            env=env,
        )
        for r in runs
    ]
    assert [p.wait() for p in procs] == [0, 0]
    assert len(store_entries()) == 1
    assert sorted(trained_here(r) for r in runs) == [False, True]
    teachers = [json.loads((r / "metrics.json").read_text())["teacher"] for r in runs]
    assert teachers[0] == teachers[1]
    stored = torch.load(store_entries()[0], weights_only=False)
    assert torch.isfinite(stored["logits"][stored["split"]["train"]]).all()  # not torn


def test_the_store_can_be_turned_off(tmp_path, cache_dir):
    for name in ("a", "b"):
        pipeline.run(compose_config(tiny_overrides(cache_dir, "store=false")), tmp_path / name)
        assert trained_here(tmp_path / name)
    assert store_entries() == []


def test_an_unreadable_stored_teacher_is_trained_again(tmp_path, cache_dir, caplog):
    pipeline.run(compose_config(tiny_overrides(cache_dir)), tmp_path / "a")
    (entry,) = store_entries()
    entry.write_bytes(b"not a teacher")
    with caplog.at_level("WARNING", logger="g2m"):
        pipeline.run(compose_config(tiny_overrides(cache_dir)), tmp_path / "b")
    assert "cannot be used" in caplog.text and trained_here(tmp_path / "b")


def test_a_codebook_is_stored_beside_its_teacher(tmp_path, cache_dir):
    vq = ("loss=vq", "codebook.size=16", "codebook.dim=8", "codebook.max_epochs=5")
    pipeline.run(compose_config(tiny_overrides(cache_dir, *vq)), tmp_path / "a")
    pipeline.run(
        compose_config(tiny_overrides(cache_dir, *vq, "loss.weights.kd=0")), tmp_path / "b"
    )
    assert len(store_entries("codebook")) == 1
    assert not (tmp_path / "b" / "checkpoints" / "codebook").exists()
    pipeline.run(compose_config(tiny_overrides(cache_dir, *vq, "codebook.size=8")), tmp_path / "c")
    assert len(store_entries("codebook")) == 2  # another codebook config, another entry


def test_keys_follow_content_not_names():
    parts = {"graph": tensor_digest(torch.arange(6)), "seed": 0}
    assert artifact_key(parts) == artifact_key(dict(reversed(parts.items())))
    assert artifact_key(parts) != artifact_key({**parts, "seed": 1})
    assert tensor_digest(torch.arange(6)) != tensor_digest(torch.arange(6).float())


def test_a_digest_keeps_its_value_across_implementations():
    """Store keys and artifact provenance hold digests: hashing in place (no copy of a
    products-size graph) must give the value the byte-copying version gave (recorded)."""
    x = torch.arange(12, dtype=torch.float32).reshape(4, 3)
    edges = torch.tensor([[0, 1, 2], [1, 2, 3]])
    mask = torch.tensor([True, False, True, False])
    digest = tensor_digest(x.t(), edges, None, mask, torch.zeros(0, 2))
    assert digest == "c0a2e00870f3d6fa04b18cbeeefea0c3e11bb9733c3786037b66e04d39bbf215"
