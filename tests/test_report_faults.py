"""Damaged runs and bad ``--out`` for ``g2m.report``: a damaged run is skipped with one
warning line naming its file, the rest are reported; no usable run or an ``--out`` that
cannot be written is one ``error:`` line, exit 2, and nothing written."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from g2m.cli import run_tool
from g2m.report import tables as report
from tests.test_report import write_run

WARNING = "g2m.report: warning: skipped "
ERROR = "g2m.report: error: "
REPORT_FILES = ["accuracy.png", "report.csv", "report.md", "tradeoff.png"]

DAMAGE = {
    "truncated": ("metrics.json", '{"dataset": "cora", "split": "cp', "not valid JSON"),
    "empty": ("metrics.json", "", "empty file"),
    "no fields": ("metrics.json", "{}", "no 'dataset', 'setting', 'seed', 'student'"),
    "a list": ("metrics.json", "[1, 2]", "a JSON list, not an object"),
    "text accuracy": (
        "metrics.json",
        json.dumps(
            {
                "dataset": "cora",
                "setting": "transductive",
                "seed": 0,
                "student": {"name": "mlp", "val_acc": "high"},
            }
        ),
        "'student.val_acc' is not a finite number",
    ),
    "truncated timings": ("timings.json", '{"wall_seconds": 1', "timings.json beside it"),
}


@pytest.fixture(autouse=True)
def _no_debug(monkeypatch):
    monkeypatch.delenv("G2M_DEBUG", raising=False)


@pytest.fixture
def sweep(tmp_path):
    root = tmp_path / "sweep"
    write_run(root, "a", "cora", "glnn", 0, 0.80, 0.70, 10.0)
    write_run(root, "b", "cora", "glnn", 1, 0.82, 0.74, 12.0)
    return root


def run(argv: list[str], capsys) -> tuple[int, str]:
    """``python -m g2m.report ARGV`` in this process: ``(exit status, stderr)``."""
    try:
        run_tool("g2m.report", lambda: report.main(argv))
        status = 0
    except SystemExit as stop:
        status = stop.code
    return status, capsys.readouterr().err


def damage(root, name: str, kind: str) -> str:
    """Write run ``name`` below ``root`` with the damage ``kind``; its metrics.json path."""
    filename, content, _ = DAMAGE[kind]
    write_run(root, name, "cora", "glnn", 2, 0.80, 0.10, 10.0)
    (root / name / filename).write_text(content)
    return str(root / name / "metrics.json")


@pytest.mark.parametrize("kind", DAMAGE)
def test_a_damaged_run_is_skipped_with_one_warning(sweep, tmp_path, capsys, kind):
    path = damage(sweep, "broken", kind)
    out = tmp_path / "out"
    status, stderr = run([str(sweep), "--out", str(out), "--times", "recorded"], capsys)
    lines = stderr.strip().splitlines()
    assert status == 0 and "Traceback" not in stderr
    assert len(lines) == 1 and lines[0].startswith(f"{WARNING}{path}: "), stderr
    assert DAMAGE[kind][2] in lines[0]
    table = (out / "report.md").read_text()
    assert "| cora | sage | glnn | transductive | 2 |" in table  # the two good runs, only
    assert "broken" not in table
    assert sorted(p.name for p in out.iterdir()) == REPORT_FILES  # no temporary files


def test_every_damaged_run_gets_its_own_line(sweep, tmp_path, capsys):
    paths = [damage(sweep, f"broken-{i}", kind) for i, kind in enumerate(DAMAGE)]
    status, stderr = run(
        [str(sweep), "--out", str(tmp_path / "out"), "--times", "recorded"], capsys
    )
    lines = stderr.strip().splitlines()
    assert status == 0 and len(lines) == len(DAMAGE), stderr
    for line, path in zip(lines, sorted(paths), strict=True):
        assert line.startswith(f"{WARNING}{path}: ")


def test_no_usable_run_is_one_error_and_writes_nothing(tmp_path, capsys):
    root = tmp_path / "sweep"
    paths = [damage(root, "x", "truncated"), damage(root, "y", "no fields")]
    out = tmp_path / "out"
    status, stderr = run([str(root), "--out", str(out)], capsys)
    lines = stderr.strip().splitlines()
    assert status == 2 and "Traceback" not in stderr and len(lines) == 3, stderr
    for line, path in zip(lines[:2], paths, strict=True):
        assert line.startswith(f"{WARNING}{path}: ")
    assert lines[2].startswith(ERROR) and "all 2 metrics.json" in lines[2]
    assert not out.exists()


def test_out_that_is_an_existing_file_is_refused(sweep, tmp_path, capsys):
    out = tmp_path / "report.md"
    out.write_text("mine")
    status, stderr = run([str(sweep), "--out", str(out)], capsys)
    assert status == 2 and "Traceback" not in stderr
    assert stderr.strip().splitlines() == [
        f"{ERROR}--out {out} is an existing file; give a directory to write into "
        "(a new one is created)."
    ]
    assert out.read_text() == "mine"


def test_out_below_a_regular_file_is_refused(sweep, tmp_path, capsys):
    blocker = tmp_path / "afile"
    blocker.write_text("mine")
    out = blocker / "report"
    status, stderr = run([str(sweep), "--out", str(out)], capsys)
    lines = stderr.strip().splitlines()
    assert status == 2 and len(lines) == 1 and lines[0].startswith(ERROR)
    assert f"{blocker} is a file, not a directory" in lines[0]
    assert blocker.read_text() == "mine"


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into read-only folders")
def test_out_in_a_read_only_folder_is_refused(sweep, tmp_path, capsys):
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o555)
    try:
        status, stderr = run([str(sweep), "--out", str(locked / "report")], capsys)
        lines = stderr.strip().splitlines()
        assert status == 2 and len(lines) == 1 and "is read-only" in lines[0]
        assert list(locked.iterdir()) == []
    finally:
        locked.chmod(0o755)


def test_out_on_a_read_only_filesystem_is_refused(sweep, tmp_path, capsys, monkeypatch):
    # as root too: the folder answers access(W_OK) as a read-only mount does (EROFS)
    locked = tmp_path / "mount"
    locked.mkdir()
    real_access = os.access
    monkeypatch.setattr(os, "access", lambda p, mode: Path(p) != locked and real_access(p, mode))
    status, stderr = run([str(sweep), "--out", str(locked / "report")], capsys)
    lines = stderr.strip().splitlines()
    assert status == 2 and len(lines) == 1 and lines[0].startswith(ERROR)
    assert f"{locked} is read-only" in lines[0]
    assert list(locked.iterdir()) == []


@pytest.mark.slow
def test_the_command_line_warns_and_reports_the_rest(sweep, tmp_path):
    path = damage(sweep, "broken", "truncated")
    env = {k: v for k, v in os.environ.items() if k != "G2M_DEBUG"}
    out = tmp_path / "out"
    result = subprocess.run(
        [sys.executable, "-m", "g2m.report", str(sweep), "--out", str(out), "--times", "recorded"],
        capture_output=True,
        text=True,
        env=env,
    )
    assert result.returncode == 0, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"{WARNING}{path}: not valid JSON")
    assert (out / "report.md").is_file()
