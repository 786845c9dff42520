"""teacher=ensemble (g2m/run/ensemble.py): K trained teachers' soft labels, none retrained."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from g2m.data.splits import NodeSplit
from g2m.errors import ArtifactError, ConfigError
from g2m.run.artifacts import TeacherArtifact
from g2m.run.build import build_run
from g2m.run.ensemble import TeacherEnsemble
from tests.conftest import compose_config, tiny_overrides

SPLIT = NodeSplit(
    train=torch.tensor([0, 1]), val=torch.tensor([2, 3]), test=torch.tensor([4, 5]),
    test_ind=torch.tensor([], dtype=torch.long), num_nodes=6,
)  # fmt: skip
LABELS = torch.tensor([0, 1, 0, 1, 0, 1])


def member(path: Path, logits: list[list[float]], val_acc: float, split=SPLIT) -> Path:
    artifact = TeacherArtifact(
        torch.tensor(logits), torch.ones(6, 2), split, "g", "sage", 3,
        metrics={"val_acc": val_acc}, timings={"inference_ms": 1.5},
    )  # fmt: skip
    artifact.save(path)
    return path


# member a is right on nodes 0-3 and 5, b on 0-4 but less sure
A = [[2, 0], [0, 2], [2, 0], [0, 2], [0, 2], [0, 2]]
B = [[1, 0], [0, 1], [1, 0], [1, 0], [1, 0], [0, 1]]


def ensemble(members, **settings) -> TeacherEnsemble:
    defaults = {"combine": "mean", "temperature": 1.0, "weight_temperature": 0.01}
    return TeacherEnsemble(members, **(defaults | settings))


def softmax(row, t=1.0):
    e = [math.exp(v / t) for v in row]
    return [v / sum(e) for v in e]


def test_the_mean_ensemble_is_the_average_of_the_members_probabilities(tmp_path):
    paths = [member(tmp_path / "a.pt", A, 1.0), member(tmp_path / "b.pt", B, 0.5)]
    out = ensemble(paths, temperature=2.0).artifact("g", LABELS, 3, SPLIT, "digest")
    expected = [[(p + q) / 2 for p, q in zip(softmax(a, 2), softmax(b, 2), strict=True)]
                for a, b in zip(A, B, strict=True)]  # fmt: skip
    torch.testing.assert_close(out.logits.exp(), torch.tensor(expected))
    assert out.embedding.shape == (6, 4)  # the members' embeddings side by side
    # node 3: a says 1 (p=0.73 at T=2), b says 0 (0.62): the mean says 1 (right)
    assert out.metrics["val_acc"] == 1.0
    assert out.metrics["weights"] == [0.5, 0.5]
    assert out.timings["inference_ms"] == 3.0


def test_weighted_members_follow_their_validation_accuracy(tmp_path):
    paths = [member(tmp_path / "a.pt", A, 0.80), member(tmp_path / "b.pt", B, 0.79)]
    out = ensemble(paths, combine="weighted", weight_temperature=0.01).artifact(
        "g", LABELS, 3, SPLIT, "digest"
    )
    weight_a = 1 / (1 + math.exp(-1.0))  # softmax of (0.80, 0.79) / 0.01
    assert out.metrics["weights"] == pytest.approx([weight_a, 1 - weight_a], abs=1e-6)


def test_a_member_of_another_split_is_refused_naming_it(tmp_path):
    other = NodeSplit(SPLIT.val, SPLIT.train, SPLIT.test, SPLIT.test_ind, 6)
    paths = [member(tmp_path / "a.pt", A, 1.0), member(tmp_path / "b.pt", B, 0.5, split=other)]
    with pytest.raises(ArtifactError, match=r"teacher.members: .*b.pt: .*a different split"):
        ensemble(paths).artifact("g", LABELS, 3, SPLIT, "digest")


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"members": ["x.pt"]}, "expected a list of two or more teacher.pt paths"),
        ({"combine": "max"}, "teacher.combine='max': expected one of mean, weighted"),
        ({"temperature": 0}, "teacher.temperature=0: expected a number > 0"),
        ({"members": ["nowhere/a.pt", "nowhere/b.pt"]}, "no such file: nowhere/a.pt"),
    ],
)
def test_bad_settings_are_refused(kwargs, message, tmp_path):
    paths = [member(tmp_path / "a.pt", A, 1.0), member(tmp_path / "b.pt", B, 0.5)]
    with pytest.raises(ConfigError, match=message):
        ensemble(**({"members": paths} | kwargs))


def train(run_dir: Path, cache: Path, *extra: str) -> subprocess.CompletedProcess:
    overrides = tiny_overrides(cache, *extra, f"hydra.run.dir={run_dir}")
    if "teacher=ensemble" in extra:  # the tiny run's teacher epochs: no teacher trains here
        overrides = [o for o in overrides if not o.startswith(("teacher.max", "teacher.pat"))]
    command = [sys.executable, "-m", "g2m.train", *overrides]
    return subprocess.run(command, capture_output=True, text=True)


@pytest.mark.slow
def test_a_student_distils_an_ensemble_of_two_trained_teachers(tmp_path, cache_dir):
    for teacher in ("sage", "gcn"):
        done = train(tmp_path / teacher, cache_dir, f"teacher={teacher}")
        assert done.returncode == 0, done.stderr[-2000:]
    members = f"teacher.members=[{tmp_path / 'sage/teacher.pt'},{tmp_path / 'gcn/teacher.pt'}]"
    done = train(tmp_path / "ensemble", cache_dir, "teacher=ensemble", members)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "Teacher ensemble of 2 members" in (tmp_path / "ensemble" / "train.log").read_text()
    metrics = json.loads((tmp_path / "ensemble" / "metrics.json").read_text())
    assert metrics["teacher"]["name"] == "ensemble" and metrics["teacher"]["weights"] == [0.5, 0.5]
    assert not (tmp_path / "ensemble" / "checkpoints" / "teacher").exists()  # none trained
    # its accuracy is that of the mean of the members' stored probabilities
    sage, gcn = (TeacherArtifact.load(tmp_path / t / "teacher.pt") for t in ("sage", "gcn"))
    mean = (sage.logits.softmax(-1) + gcn.logits.softmax(-1)) / 2
    plan = build_run(compose_config(tiny_overrides(cache_dir)))
    labels = plan.source.load(plan.location).data.y
    for part in ("val", "test"):
        nodes = getattr(sage.split, part)
        expected = (mean[nodes].argmax(-1) == labels[nodes]).float().mean().item()
        assert metrics["teacher"][f"{part}_acc"] == pytest.approx(expected, abs=1e-7)
    vq = train(tmp_path / "vq", cache_dir, "teacher=ensemble", members, "loss=vq")
    assert vq.returncode == 2 and "has none" in vq.stderr
    assert not (tmp_path / "vq").exists()
