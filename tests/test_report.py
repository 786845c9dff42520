"""g2m.report: known runs in, known table out; CSV and both plots written."""

from __future__ import annotations

import csv
import json

import pytest

from g2m.errors import DataError
from g2m.report import tables as report


def write_run(root, name, dataset, loss, seed, teacher_acc, student_acc, wall, tag=None):
    run = root / name
    run.mkdir(parents=True)
    metrics = {
        "dataset": dataset,
        "split": "cpf",
        "setting": "transductive",
        "seed": seed,
        "teacher": {"name": "sage", "val_acc": 0.8, "test_acc": teacher_acc},
        "student": {"name": "mlp", "loss": loss, "val_acc": 0.7, "test_acc": student_acc},
    }
    if tag:
        metrics["tag"] = tag
    (run / "metrics.json").write_text(json.dumps(metrics))
    timings = {"wall_seconds": wall, "teacher_inference_ms": 8.0, "student_inference_ms": 2.0}
    (run / "timings.json").write_text(json.dumps(timings))


@pytest.fixture
def runs(tmp_path):
    root = tmp_path / "sweep"
    write_run(root, "a", "cora", "glnn", 0, 0.80, 0.70, 10.0)
    write_run(root, "b", "cora", "glnn", 1, 0.82, 0.74, 12.0)
    write_run(root, "c", "cora", "other", 0, 0.80, 0.90, 20.0)
    return root


def test_known_runs_give_the_known_table(runs):
    rows = report.summarise(report.load_runs([runs]), ["dataset", "loss"])
    assert [(r["dataset"], r["loss"], r["n"]) for r in rows] == [
        ("cora", "glnn", 2),
        ("cora", "other", 1),
    ]
    assert rows[0]["student test"] == pytest.approx((72.0, 2.0))
    assert rows[0]["teacher test"] == pytest.approx((81.0, 1.0))
    assert rows[0]["wall s/run"] == pytest.approx((11.0, 1.0))
    assert rows[1]["student test"] == pytest.approx((90.0, 0.0))
    assert rows[0]["best run"].endswith("a")  # equal val: the first run found wins
    table = report.to_markdown(rows, ["dataset", "loss"])
    assert (
        "| cora | glnn | 2 | 80.00 ± 0.00 | 81.00 ± 1.00 | 70.00 ± 0.00 | 72.00 ± 2.00 |" in table
    )
    assert "teacher ind" not in table  # columns without data are left out


def test_cli_writes_markdown_csv_and_plots(runs, tmp_path):
    out = tmp_path / "out"
    report.main([str(runs), "--out", str(out), "--by", "dataset", "loss"])
    for name in ("report.md", "report.csv", "accuracy.png", "tradeoff.png"):
        assert (out / name).stat().st_size > 0, name
    with open(out / "report.csv") as handle:
        rows = list(csv.DictReader(handle))
    assert rows[0]["student test mean"] == "72.0000"
    assert (out / "accuracy.png").read_bytes()[:4] == b"\x89PNG"
    assert "Best student per group" in (out / "report.md").read_text()


def test_no_runs_is_a_clear_error(tmp_path):
    with pytest.raises(DataError, match="no metrics.json"):
        report.load_runs([tmp_path])


def test_tagged_runs_get_their_own_group_by_default(runs, tmp_path):
    write_run(runs, "d", "cora", "glnn", 0, 0.80, 0.60, 10.0, tag="ablation")
    out = tmp_path / "out"
    report.main([str(runs), "--out", str(out)])
    table = (out / "report.md").read_text()
    assert table.startswith("| dataset | teacher | loss | tag | setting | n |")
    assert "| cora | sage | glnn |  | transductive | 2 |" in table
    assert "| cora | sage | glnn | ablation | transductive | 1 |" in table


@pytest.mark.slow
def test_the_tradeoff_times_each_distinct_model_once_in_one_controlled_pass(tmp_path, cache_dir):
    from g2m.report.timing import InferenceTimer
    from g2m.run import pipeline
    from tests.conftest import compose_config, tiny_overrides

    for name, loss in (("glnn", "glnn"), ("glnn-seed1", "glnn"), ("mlp", "supervised")):
        seed = "seed=1" if name.endswith("seed1") else "seed=0"
        pipeline.run(
            compose_config(tiny_overrides(cache_dir, f"loss={loss}", seed)), tmp_path / name
        )
    timer = InferenceTimer("cpu", repeats=5, warmup=1)
    glnn, again, mlp = (timer.times(tmp_path / n) for n in ("glnn", "glnn-seed1", "mlp"))
    assert glnn is again  # the same models, timed once
    for timed in (glnn["teacher"], glnn["student"], mlp["student"]):
        assert timed.measured and timed.device == "CPU"
        assert 0 < timed.low <= timed.median <= timed.high
    assert mlp["teacher"] is None  # a label-only student has no teacher to time
    out = tmp_path / "report"
    report.main([str(tmp_path), "--out", str(out)])
    assert (out / "tradeoff.png").stat().st_size > 0
