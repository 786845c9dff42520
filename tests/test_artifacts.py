"""Teacher and student artifacts: round trips, mismatch refusal, atomic writes."""

from __future__ import annotations

import subprocess
import sys

import pytest
import torch

from g2m.io import atomic_write
from g2m.models import MLPStudent
from g2m.run.artifacts import TeacherArtifact
from g2m.serve.artifact import load_student, save_student
from tests.conftest import cpf_split


@pytest.fixture
def artifact(tiny_graph):
    split = cpf_split(tiny_graph, seed=0, held_out=0.2)
    logits = torch.randn(120, 3)
    logits[split.test_ind] = float("nan")
    return TeacherArtifact(
        logits, torch.randn(120, 16), split, "synthetic", "sage", 8, metrics={"val_acc": 0.5}
    )


def test_teacher_artifact_round_trip(artifact, tmp_path):
    loaded = TeacherArtifact.load(artifact.save(tmp_path / "teacher.pt"))
    assert torch.equal(loaded.logits.nan_to_num(), artifact.logits.nan_to_num())
    assert torch.equal(loaded.embedding, artifact.embedding)
    assert loaded.split.same_as(artifact.split)
    assert (loaded.dataset, loaded.teacher, loaded.metrics) == (
        "synthetic",
        "sage",
        {"val_acc": 0.5},
    )
    loaded.check_compatible("synthetic", 8, artifact.split)


def test_teacher_artifact_refuses_another_run(artifact, tiny_graph):
    other_split = cpf_split(tiny_graph, seed=1)
    with pytest.raises(ValueError, match=r"dataset 'synthetic'.*8 features \(this run: 16\)"):
        artifact.check_compatible("cora", 16, artifact.split)
    with pytest.raises(ValueError, match="different split"):
        artifact.check_compatible("synthetic", 8, other_split)


def test_foreign_or_missing_teacher_file(tmp_path):
    with pytest.raises(FileNotFoundError):
        TeacherArtifact.load(tmp_path / "missing.pt")
    foreign = tmp_path / "foreign.pt"
    torch.save({"weights": 1}, foreign)
    with pytest.raises(ValueError, match="not a g2m teacher artifact"):
        TeacherArtifact.load(foreign)


def test_student_artifact_gives_the_same_logits(tmp_path):
    model = MLPStudent(8, 16, 3, num_layers=3, norm="batch", dropout=0.3).eval()
    path = save_student(model, tmp_path / "student.pt", provenance={"dataset": "synthetic"})
    loaded, meta = load_student(path)
    x = torch.randn(11, 8)
    torch.testing.assert_close(loaded(x), model(x))
    assert meta["input"]["num_features"] == 8 and meta["provenance"]["dataset"] == "synthetic"
    assert meta["classes"] == ["0", "1", "2"]


def test_atomic_write_leaves_nothing_behind_on_failure(tmp_path):
    def fail(tmp):
        tmp.write_text("half")
        raise RuntimeError("killed")

    with pytest.raises(RuntimeError):
        atomic_write(tmp_path / "metrics.json", fail)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.slow
def test_loading_a_student_needs_torch_alone(tmp_path):
    path = save_student(MLPStudent(4, 8, 2), tmp_path / "student.pt", provenance={})
    code = (
        "import sys; from g2m.serve.artifact import load_student; "
        f"load_student({str(path)!r}); "
        "heavy = {'torch_geometric', 'lightning', 'hydra'} & set(sys.modules); "
        "assert not heavy, heavy"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr


def test_written_files_take_the_umask_mode_not_the_temporary_files(tmp_path):
    import os

    previous = os.umask(0o027)
    try:
        path = atomic_write(tmp_path / "out.txt", lambda tmp: tmp.write_text("x"))
    finally:
        os.umask(previous)
    assert (path.stat().st_mode & 0o777) == 0o640  # 0o666 less the umask, not mkstemp's 0o600
