"""Bad input to ``g2m.serve.predict`` and ``g2m.serve.export``: one ``error:`` line, exit 2,
no traceback, and nothing (not even a temporary file) left where the output would go."""

from __future__ import annotations

import errno
import os
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch

from g2m.cli import run_tool
from g2m.errors import OutputError
from g2m.io import write_output
from g2m.models import MLPStudent
from g2m.serve import export, predict
from g2m.serve.artifact import save_student

INCOMPLETE = "is not a complete g2m student artifact"


@pytest.fixture
def artifact(tmp_path):
    model = MLPStudent(6, 16, 3, num_layers=3, norm="batch").eval()
    return save_student(model, tmp_path / "student.pt", provenance={"dataset": "toy"})


@pytest.fixture
def features(tmp_path):
    path = tmp_path / "x.npy"
    np.save(path, np.ones((4, 6), np.float32))
    return path


@pytest.fixture(autouse=True)
def _no_debug(monkeypatch):
    monkeypatch.delenv("G2M_DEBUG", raising=False)  # G2M_DEBUG=1 re-raises: no exit status


def run(module, argv: list[str], capsys) -> tuple[int, str]:
    """``module.main(argv)`` as ``python -m`` runs it: ``(exit status, stderr)``; fails if
    anything is printed through ``warnings`` (it would be a second line on a terminal)."""
    name = module.__name__
    with warnings.catch_warnings(record=True) as caught, pytest.raises(SystemExit) as stop:
        warnings.simplefilter("always")
        run_tool(name, lambda: module.main(argv))
    assert not caught, [str(w.message) for w in caught]
    return stop.value.code, capsys.readouterr().err


def assert_refused(status: int, stderr: str, tool: str, *messages: str) -> None:
    assert status == 2, stderr
    assert "Traceback" not in stderr
    lines = stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"{tool}: error: "), stderr
    for message in messages:
        assert message in lines[0], lines[0]


def edit_artifact(path: Path, edit) -> Path:
    """A copy of the artifact at ``path`` with ``edit(state)`` applied, as a user might."""
    state = torch.load(path, weights_only=True)
    edit(state)
    edited = path.with_name("edited.pt")
    torch.save(state, edited)
    return edited


def _resize(state):
    state["model_args"]["hidden_channels"] = 8


def _drop_weight(state):
    state["state_dict"].pop("out.weight")


def _unknown_argument(state):
    state["model_args"]["width"] = 3


def _short_classes(state):
    state["classes"] = ["0", "1"]


EDITS = {
    "no model_args": (lambda s: s.pop("model_args"), "no 'model_args'"),
    "no input": (lambda s: s.pop("input"), "no 'input'"),
    "size mismatch": (_resize, "size mismatch for"),
    "missing weight": (_drop_weight, 'Missing key(s) in state_dict: "out.weight"'),
    "unknown argument": (_unknown_argument, "do not build the MLP"),
    "classes of the wrong size": (_short_classes, "'classes' is not a list of 3 labels"),
}


def write_features(path: Path, values) -> Path:
    if path.suffix == ".npy":
        np.save(path, values)
    elif path.suffix == ".pt":
        torch.save(torch.as_tensor(values), path)
    else:
        np.savetxt(path, values, delimiter=",")
    return path


# --- predict: the features ----------------------------------------------------------------


@pytest.mark.parametrize("content", ["", "\n\n"], ids=["empty", "blank-lines"])
def test_predict_refuses_an_empty_csv(artifact, tmp_path, capsys, content):
    path = tmp_path / "x.csv"
    path.write_text(content)
    out = tmp_path / "p.csv"
    status, stderr = run(predict, [str(artifact), str(path), "--out", str(out)], capsys)
    assert_refused(status, stderr, "g2m.serve.predict", "holds no features", "one line per node")
    assert not out.exists()


@pytest.mark.parametrize("suffix", [".npy", ".pt"])
def test_predict_refuses_complex_features(artifact, tmp_path, capsys, suffix):
    path = write_features(tmp_path / f"x{suffix}", np.full((3, 6), 1 + 2j, np.complex64))
    out = tmp_path / "p.csv"
    status, stderr = run(predict, [str(artifact), str(path), "--out", str(out)], capsys)
    assert_refused(status, stderr, "g2m.serve.predict", "features are complex", "real part")
    assert not out.exists()


@pytest.mark.parametrize("suffix", [".npy", ".pt", ".csv"])
def test_predict_refuses_values_beyond_float32(artifact, tmp_path, capsys, suffix):
    values = np.ones((4, 6))
    values[1, 2], values[3, 2], values[0, 4] = 1e300, -1e300, 3.5e38  # 3.5e38 > float32 max
    path = write_features(tmp_path / f"x{suffix}", values)
    out = tmp_path / "p.csv"
    status, stderr = run(predict, [str(artifact), str(path), "--out", str(out)], capsys)
    assert_refused(
        status, stderr, "g2m.serve.predict", "3 values are beyond float32's range", "[2, 4]"
    )
    assert not out.exists()


def test_float64_features_within_range_are_still_accepted(artifact, tmp_path, capsys):
    path = write_features(tmp_path / "x.npy", np.full((2, 6), 3.0e38))  # float64, fits
    predict.main([str(artifact), str(path), "--out", str(tmp_path / "p.csv")])
    assert len((tmp_path / "p.csv").read_text().splitlines()) == 3


# --- predict and export: the artifact ----------------------------------------------------


@pytest.mark.parametrize("edit", EDITS)
@pytest.mark.parametrize("module", [predict, export], ids=["predict", "export"])
def test_an_edited_student_artifact_is_refused(artifact, features, tmp_path, capsys, module, edit):
    change, detail = EDITS[edit]
    edited = edit_artifact(artifact, change)
    out = tmp_path / "result.out"
    argv = [str(edited), *([str(features)] if module is predict else []), "--out", str(out)]
    status, stderr = run(module, argv, capsys)
    assert_refused(status, stderr, module.__name__, INCOMPLETE, detail, "g2m.train writes")
    assert not out.exists()


# --- predict and export: --out ------------------------------------------------------------


def _args(module, artifact: Path, features: Path, out: Path) -> list[str]:
    return [str(artifact), *([str(features)] if module is predict else []), "--out", str(out)]


@pytest.mark.parametrize("module", [predict, export], ids=["predict", "export"])
def test_out_that_is_a_directory_is_refused(artifact, features, tmp_path, capsys, module):
    target = tmp_path / "outdir"
    target.mkdir()
    status, stderr = run(module, _args(module, artifact, features, target), capsys)
    assert_refused(status, stderr, module.__name__, f"--out {target} is a directory")
    assert list(target.iterdir()) == []


@pytest.mark.parametrize("below", ["out.csv", "sub/out.csv"])
@pytest.mark.parametrize("module", [predict, export], ids=["predict", "export"])
def test_out_below_a_regular_file_is_refused(artifact, features, tmp_path, capsys, module, below):
    # fails for root too, unlike a read-only folder
    blocker = tmp_path / "afile"
    blocker.write_text("keep")
    out = blocker / below
    before = sorted(tmp_path.iterdir())
    status, stderr = run(module, _args(module, artifact, features, out), capsys)
    assert_refused(status, stderr, module.__name__, f"{blocker} is a file, not a directory")
    assert blocker.read_text() == "keep" and sorted(tmp_path.iterdir()) == before


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into read-only folders")
@pytest.mark.parametrize("module", [predict, export], ids=["predict", "export"])
def test_out_in_a_read_only_folder_is_refused(artifact, features, tmp_path, capsys, module):
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o555)
    try:
        status, stderr = run(module, _args(module, artifact, features, locked / "o"), capsys)
        assert_refused(status, stderr, module.__name__, f"{locked} is read-only")
        assert list(locked.iterdir()) == []
    finally:
        locked.chmod(0o755)


@pytest.mark.parametrize("module", [predict, export], ids=["predict", "export"])
def test_out_on_a_read_only_filesystem_is_refused(
    artifact, features, tmp_path, capsys, monkeypatch, module
):
    # as root too: the folder answers access(W_OK) as a read-only mount does (EROFS)
    locked = tmp_path / "mount"
    locked.mkdir()
    real_access = os.access
    monkeypatch.setattr(os, "access", lambda p, mode: Path(p) != locked and real_access(p, mode))
    status, stderr = run(module, _args(module, artifact, features, locked / "o"), capsys)
    assert_refused(status, stderr, module.__name__, f"{locked} is read-only")
    assert list(locked.iterdir()) == []


def test_a_write_that_fails_midway_leaves_nothing(tmp_path, monkeypatch):
    def disk_full(src, dst):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr("g2m.io.os.replace", disk_full)
    with pytest.raises(OutputError, match="no space left on its disk"):
        write_output(tmp_path / "p.csv", lambda tmp: tmp.write_text("half"))
    assert list(tmp_path.iterdir()) == []


# --- the real entry points, as a shell runs them -----------------------------------------


def tool(module: str, *args: str) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k != "G2M_DEBUG"}
    return subprocess.run(
        [sys.executable, "-m", module, *args], capture_output=True, text=True, env=env
    )


@pytest.mark.slow
def test_the_command_lines_print_one_line_and_exit_2(artifact, features, tmp_path):
    empty, complex_ = tmp_path / "empty.csv", tmp_path / "c.npy"
    empty.write_text("")
    np.save(complex_, np.ones((2, 6), np.complex128))
    edited = edit_artifact(artifact, lambda s: s.pop("model_args"))
    out = tmp_path / "out.csv"
    cases = [
        ("g2m.serve.predict", [str(artifact), str(empty)], "holds no features"),
        ("g2m.serve.predict", [str(artifact), str(complex_)], "features are complex"),
        ("g2m.serve.predict", [str(edited), str(features)], INCOMPLETE),
        ("g2m.serve.export", [str(edited)], INCOMPLETE),
        ("g2m.serve.export", [str(artifact), "--out", str(tmp_path)], "is a directory"),
    ]
    for module, args, message in cases:
        extra = [] if "--out" in args else ["--out", str(out)]
        result = tool(module, *args, *extra)
        assert_refused(result.returncode, result.stderr, module, message)
        assert not out.exists()
