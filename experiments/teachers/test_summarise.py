"""experiments/teachers/summarise.py on hand-written runs: the paired difference and the
validation-selected best student."""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
import summarise  # noqa: E402


def write(root: Path, setting: str, teacher: str, seed: int, val: float, test: float) -> None:
    run = root / setting / teacher / f"seed{seed}"
    run.mkdir(parents=True)
    student = {"val_acc": val, "test_acc": test, "test_acc_ind": test - 0.1}
    metrics = {"setting": setting, "seed": seed, "student": student,
               "teacher": {"val_acc": 0.8, "test_acc": 0.78, "test_acc_ind": 0.7}}  # fmt: skip
    (run / "metrics.json").write_text(json.dumps(metrics))


def test_the_best_student_is_chosen_on_validation_and_reported_on_test(tmp_path):
    root = tmp_path / "cora"
    # seed 0: gcnii has the better validation (and the worse test); seed 1: sage
    for seed, (sage, gcnii) in enumerate(
        [((0.80, 0.70), (0.85, 0.60)), ((0.90, 0.75), (0.70, 0.95))]
    ):
        write(root, "transductive", "sage", seed, *sage)
        write(root, "transductive", "gcnii", seed, *gcnii)
    tests, picks = summarise.best_by_validation(summarise.load(root)["transductive"])
    assert picks == ["gcnii", "sage"] and tests == [60.0, 75.0]
    text = summarise.table(root)
    assert "**67.50 ± 10.61**" in text and "gcnii 1, sage 1" in text
    # the paired difference of gcnii's student to sage's: -10 and +20 points
    d = [-10.0, 20.0]
    se = math.sqrt(((d[0] - 5) ** 2 + (d[1] - 5) ** 2) / 1) / math.sqrt(2)
    assert f"+5.00 ± {se:.2f}" in text
    assert "83.9" in text  # the target beside it


def test_a_teacher_without_a_held_out_accuracy_reads_not_available(tmp_path):
    root = tmp_path / "cora"
    write(root, "inductive", "sage", 0, 0.8, 0.7)
    write(root, "inductive", "ensemble", 0, 0.8, 0.7)
    ensemble = root / "inductive" / "ensemble" / "seed0" / "metrics.json"
    metrics = json.loads(ensemble.read_text())
    del metrics["teacher"]["test_acc_ind"]  # an ensemble reports none of its own
    ensemble.write_text(json.dumps(metrics))
    rows = {line.split(" | ")[0]: line for line in summarise.table(root).splitlines()}
    assert "| 70.00 ± 0.00 |" in rows["| sage"]  # the member's held-out accuracy
    assert "| n/a |" in rows["| ensemble"] and "nan" not in rows["| ensemble"]
