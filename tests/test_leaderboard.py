"""The paired leaderboard (g2m/report/leaderboard.py) on hand-written metrics.json files."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import pytest

from g2m.errors import ConfigError
from g2m.report.leaderboard import leaderboard, parse_seeds, to_markdown
from g2m.report.runs import load_runs


def teacher_block(seed: int) -> dict:
    return {"name": "sage", "val_acc": 0.8 + seed / 1000, "test_acc": 0.79, "best_epoch": seed}


def write_run(root: Path, loss: str, seed: int, test: float, teacher: dict | None = None,
              setting: str = "transductive", tag: str | None = None) -> Path:  # fmt: skip
    run = root / f"{loss}-{tag}-{setting}-{seed}"
    run.mkdir(parents=True)
    metrics = {
        "dataset": "cora",
        "split": "cpf",
        "setting": setting,
        "seed": seed,
        "student": {"name": "mlp", "loss": loss, "val_acc": 0.7, "test_acc": test},
        "g2m_version": "0.1.0",
    }
    if tag:
        metrics["tag"] = tag
    if setting == "inductive":
        metrics["student"]["test_acc_ind"] = test - 0.1
    if loss != "supervised":
        metrics["teacher"] = teacher or teacher_block(seed)
    (run / "metrics.json").write_text(json.dumps(metrics))
    return run


GLNN = [0.80, 0.82, 0.78, 0.81]
OTHER = [0.81, 0.84, 0.78, 0.83]  # differences +1, +2, 0, +2 points


def entry(entries, method):
    (found,) = [e for e in entries if e.method == method]
    return found


def test_the_paired_difference_and_its_standard_error(tmp_path):
    for seed, (a, b) in enumerate(zip(GLNN, OTHER, strict=True)):
        write_run(tmp_path, "glnn", seed, a)
        write_run(tmp_path, "pld", seed, b)
    entries = leaderboard(load_runs([tmp_path]), "glnn", warn=pytest.fail)
    pld = entry(entries, "pld")
    d = [1.0, 2.0, 0.0, 2.0]
    mean = sum(d) / 4
    se = math.sqrt(sum((x - mean) ** 2 for x in d) / 3) / 2
    assert pld.delta == pytest.approx((mean, se))
    assert (pld.pairs, pld.better, pld.worse) == (4, 3, 0)
    assert pld.beyond_noise  # 1.25 > 2 * 0.479
    assert entry(entries, "glnn").delta is None
    assert pld.test == pytest.approx((81.5, 100 * 0.02645751311), rel=1e-6)
    table = to_markdown(entries, "glnn")
    assert "| pld | sage | 4 |" in table and "+1.25 ± 0.48 *" in table


def test_a_pair_from_another_teacher_is_left_out_with_a_warning(tmp_path):
    for seed, (a, b) in enumerate(zip(GLNN, OTHER, strict=True)):
        write_run(tmp_path, "glnn", seed, a)
        retrained = teacher_block(seed) | {"test_acc": 0.75} if seed == 3 else None
        write_run(tmp_path, "pld", seed, b, teacher=retrained)
    warnings: list[str] = []
    pld = entry(leaderboard(load_runs([tmp_path]), "glnn", warn=warnings.append), "pld")
    assert pld.pairs == 3 and pld.delta[0] == pytest.approx(1.0)
    assert len(warnings) == 1 and "seed 3 did not distil the reference run's teacher" in warnings[0]


def test_tuning_seeds_never_enter_the_table(tmp_path):
    write_run(tmp_path, "glnn", 0, 0.8)
    write_run(tmp_path, "glnn", 1, 0.8)
    write_run(tmp_path, "glnn", 100, 0.99)
    warnings: list[str] = []
    (glnn,) = leaderboard(load_runs([tmp_path]), "glnn", warn=warnings.append)
    assert glnn.seeds == [0, 1] and glnn.test[0] == pytest.approx(80.0)
    assert len(warnings) == 1 and "[100]" in warnings[0]


def test_held_out_nodes_count_in_the_inductive_setting(tmp_path):
    for seed in range(2):
        write_run(tmp_path, "glnn", seed, 0.8, setting="inductive")
    (glnn,) = leaderboard(load_runs([tmp_path]), "glnn", warn=pytest.fail)
    assert glnn.test[0] == pytest.approx(70.0)
    # a teacher without held-out accuracy (an ensemble): none, not its observed-test one
    assert glnn.teacher_test is None


def test_the_teacher_column_is_its_held_out_accuracy_in_the_inductive_setting(tmp_path):
    for seed in range(2):
        teacher = teacher_block(seed) | {"test_acc_ind": 0.74}
        write_run(tmp_path, "glnn", seed, 0.8, teacher=teacher, setting="inductive")
    (glnn,) = leaderboard(load_runs([tmp_path]), "glnn", warn=pytest.fail)
    assert glnn.teacher_test[0] == pytest.approx(74.0)


def test_a_label_only_method_pairs_on_the_seed_and_a_tag_is_its_own_method(tmp_path):
    for seed, (a, b) in enumerate(zip(GLNN, OTHER, strict=True)):
        write_run(tmp_path, "glnn", seed, a)
        write_run(tmp_path, "supervised", seed, a - 0.05)
        write_run(tmp_path, "glnn", seed, b, tag="wide")
    entries = leaderboard(load_runs([tmp_path]), "glnn", warn=pytest.fail)
    assert entry(entries, "supervised").delta[0] == pytest.approx(-5.0)
    assert entry(entries, "supervised").teacher is None
    assert entry(entries, "glnn [wide]").delta[0] == pytest.approx(1.25)


@pytest.mark.parametrize(("text", "seeds"), [("0-9", set(range(10))), ("0,2-3", {0, 2, 3})])
def test_seed_ranges(text, seeds):
    assert parse_seeds(text) == seeds


def test_a_bad_seed_range_is_refused():
    with pytest.raises(ConfigError, match="expected seeds and ranges"):
        parse_seeds("zero")


def test_the_command_writes_both_files_and_refuses_bad_input_in_one_line(tmp_path):
    runs = tmp_path / "runs"
    for seed, (a, b) in enumerate(zip(GLNN, OTHER, strict=True)):
        write_run(runs, "glnn", seed, a)
        write_run(runs, "bdkd", seed, b)
    out = tmp_path / "board"
    command = [sys.executable, "-m", "g2m.report.leaderboard", str(runs), "--out", str(out)]
    done = subprocess.run(command, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert "+1.25 ± 0.48 *" in (out / "leaderboard.md").read_text()
    assert (out / "leaderboard.csv").read_text().splitlines()[0].startswith("dataset,setting")
    assert (out / "leaderboard.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    bad = subprocess.run([*command, "--seeds", "x"], capture_output=True, text=True)
    assert bad.returncode == 2
    assert bad.stderr.strip().splitlines() == [
        "g2m.report.leaderboard: error: --seeds 'x': expected seeds and ranges such as 0-9 "
        "or 0,1,2 or 0-4,7."
    ]


def test_another_student_is_its_own_method_and_report_groups_by_student(tmp_path):
    from g2m.report.tables import default_by

    for seed, (a, b) in enumerate(zip(GLNN, OTHER, strict=True)):
        write_run(tmp_path, "glnn", seed, a)
        wide = write_run(tmp_path, "glnn", seed, b, tag="w")
        metrics = json.loads((wide / "metrics.json").read_text())
        metrics["student"]["name"] = "mlpw4"
        metrics.pop("tag")
        (wide / "metrics.json").write_text(json.dumps(metrics))
    runs = load_runs([tmp_path])
    entries = leaderboard(runs, "glnn", warn=pytest.fail)
    assert entry(entries, "glnn (mlpw4)").delta[0] == pytest.approx(1.25)
    assert default_by(runs) == ["dataset", "teacher", "student", "loss", "setting"]
    assert "student" not in default_by(runs[:1])


PUBLISHED = """
glnn:
  selection: validation - the authors' code keeps the best validation epoch
  transductive: {cora: 80.5}
pld:
  selection: test - keeps the best test epoch
  transductive: {cora: 83.0, citeseer: 70.0}
  reference:
    transductive: {cora: 80.0}
"""


def test_published_numbers_sit_beside_their_rows_with_the_claimed_gain(tmp_path):
    from g2m.report.leaderboard import read_published

    for seed, (a, b) in enumerate(zip(GLNN, OTHER, strict=True)):
        write_run(tmp_path / "runs", "glnn", seed, a)
        write_run(tmp_path / "runs", "pld", seed, b)
    (tmp_path / "published.yaml").write_text(PUBLISHED)
    published = read_published(tmp_path / "published.yaml", "glnn")
    assert published[("pld", "transductive", "cora")].claimed_gain == pytest.approx(3.0)
    assert published[("pld", "transductive", "cora")].on_test
    assert published[("pld", "transductive", "citeseer")].claimed_gain is None
    assert published[("glnn", "transductive", "cora")].claimed_gain is None  # no self-gain
    entries = leaderboard(load_runs([tmp_path / "runs"]), "glnn", published=published,
                          warn=pytest.fail)  # fmt: skip
    table = to_markdown(entries, "glnn")
    assert "| 83.00 (+3.00) † |" in table and "| 80.50 |" in table
    assert entry(entries, "pld").published.value == 83.0
    # the figure draws the claim beside the measured difference
    from g2m.report.plots import plot_paired

    plot_paired(entries, "glnn", tmp_path / "paired.png")
    assert (tmp_path / "paired.png").stat().st_size > 1000


def test_an_unreadable_published_file_is_one_config_error(tmp_path):
    from g2m.report.leaderboard import read_published

    (tmp_path / "bad.yaml").write_text("glnn: [1, 2")
    with pytest.raises(ConfigError, match="--published") as err:
        read_published(tmp_path / "bad.yaml", "glnn")
    assert "\n" not in str(err.value)
    (tmp_path / "flat.yaml").write_text("glnn: 3")
    with pytest.raises(ConfigError, match="block"):
        read_published(tmp_path / "flat.yaml", "glnn")
