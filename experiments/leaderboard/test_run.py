"""The leaderboard's tune and report steps on the test suite's tiny synthetic graph."""

from __future__ import annotations

import csv
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tests.conftest import tiny_overrides

SCRIPT = Path(__file__).with_name("run.py")


def step(*args: str, cache: Path) -> subprocess.CompletedProcess:
    tiny = [o for o in tiny_overrides(cache) if not o.startswith("dataset=")]
    command = [sys.executable, str(SCRIPT), *args, "--dataset", "synthetic", "--jobs", "1"]
    return subprocess.run([*command, "--", *tiny], capture_output=True, text=True)


def test_every_grid_has_the_same_budget():
    grids = yaml.safe_load(SCRIPT.with_name("grids.yaml").read_text())
    budgets = {method: len(points) for method, points in grids.items() if method != "supervised"}
    assert set(budgets.values()) == {4}, budgets
    assert grids["supervised"] == [{}]


@pytest.mark.slow
def test_tune_chooses_on_validation_then_report_pairs_on_one_teacher(tmp_path, cache_dir):
    tuned = step("tune", "--methods", "glnn", "supervised", "--seeds", "100",
                 "--out", str(tmp_path / "tune"), cache=cache_dir)  # fmt: skip
    assert tuned.returncode == 0, tuned.stderr[-3000:]
    chosen = yaml.safe_load((tmp_path / "tune" / "chosen.yaml").read_text())["synthetic"]
    lines = [line for line in tuned.stdout.splitlines() if line.startswith("glnn ")]
    assert len(lines) == 4 and sum("<- chosen" in line for line in lines) == 1
    best = max(lines, key=lambda line: float(line.split("val")[1].split()[0]))
    assert "<- chosen" in best  # the highest validation accuracy, nothing else
    assert set(chosen) == {"glnn", "supervised"} and chosen["supervised"] == {}
    # a method tuned later, alone, joins the earlier choices instead of replacing them
    later = step("tune", "--methods", "bdkd", "--seeds", "100",
                 "--out", str(tmp_path / "tune"), cache=cache_dir)  # fmt: skip
    assert later.returncode == 0, later.stderr[-3000:]
    merged = yaml.safe_load((tmp_path / "tune" / "chosen.yaml").read_text())["synthetic"]
    assert set(merged) == {"glnn", "supervised", "bdkd"} and merged["glnn"] == chosen["glnn"]
    reported = step("report", "--methods", "glnn", "bdkd", "supervised", "--seeds", "0-1",
                    "--chosen", str(tmp_path / "tune" / "chosen.yaml"),
                    "--out", str(tmp_path / "report"), cache=cache_dir)  # fmt: skip
    assert reported.returncode == 0, reported.stderr[-3000:]
    table = (tmp_path / "report" / "synthetic" / "leaderboard" / "leaderboard.md").read_text()
    assert "| glnn | sage | 2 |" in table and "| supervised | none | 2 |" in table
    # one teacher per seed, from the store: bdkd is paired with glnn on both seeds
    assert "did not distil" not in reported.stderr
    board = tmp_path / "report" / "synthetic" / "leaderboard" / "leaderboard.csv"
    with open(board) as handle:
        rows = list(csv.DictReader(handle))
    (bdkd,) = [r for r in rows if r["method"] == "bdkd"]
    assert bdkd["pairs"] == "2" and bdkd["delta"] != ""


def test_a_point_names_one_folder_whatever_the_order_of_its_keys():
    import importlib.util

    spec = importlib.util.spec_from_file_location("leaderboard_run", SCRIPT)
    run = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(run)
    grid_order = {"loss.temperature": 1.0, "loss.label_weight": 0.1}
    assert run.point_name(grid_order) == run.point_name(dict(reversed(grid_order.items())))
    assert run.point_name({}) == "default"
