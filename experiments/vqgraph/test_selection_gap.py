"""experiments/vqgraph/selection_gap.py: the per-epoch test curve of a retrained student."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from g2m.run import pipeline
from tests.conftest import compose_config, load_script, tiny_overrides


def _load_script():
    return load_script(Path(__file__).with_name("selection_gap.py"))


@pytest.mark.parametrize("setting", ["transductive", "inductive"])
@pytest.mark.slow
def test_gap_retrains_the_student_and_bounds_the_reported_accuracy(setting, tmp_path, cache_dir):
    run = tmp_path / "run"
    cfg = compose_config(tiny_overrides(cache_dir, "loss=glnn", f"setting={setting}"))
    pipeline.run(cfg, run)
    script = _load_script()
    row = script.measure(run)
    # on the CPU the retrained student is the run's own, bit for bit
    assert row["reported"] == pytest.approx(row["recorded"], abs=1e-6)
    assert row["max_test"] >= row["reported"] and row["epochs"] >= 1
    assert row["setting"] == setting and row["loss"] == "glnn"
    script.main([str(tmp_path), "--out", str(tmp_path / "gap.json")])
    saved = json.loads((tmp_path / "gap.json").read_text())
    assert [r["run"] for r in saved] == [str(run)]


def test_gap_refuses_a_folder_without_runs(tmp_path):
    with pytest.raises(SystemExit, match="no finished g2m run"):
        _load_script().main([str(tmp_path)])
