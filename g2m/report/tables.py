"""Aggregate runs into mean ± std tables and plots: ``python -m g2m.report RUNS... --out DIR``.

Every ``metrics.json`` below the given run or sweep folders is one run (one seed); runs are
grouped by dataset × teacher × student × loss × setting (``--by`` changes that). Writes
``report.md`` and ``report.csv`` (accuracies in %, ``n`` = runs per group) and, when matplotlib
is installed, ``accuracy.png`` (student test accuracy per method with ±1 std error bars) and
``tradeoff.png`` (accuracy against inference time, teacher and student, GLNN's Figure 1).
A damaged run (truncated ``metrics.json``, fields missing) is skipped with one warning line
(:mod:`g2m.report.runs`); an ``--out`` that cannot be written is refused before any work.
"""

from __future__ import annotations

import argparse
import csv
import statistics
from collections import defaultdict
from pathlib import Path

from g2m.io import check_output, write_output
from g2m.report.runs import load_runs

__all__ = ["load_runs", "main", "summarise", "to_markdown", "write_csv"]

GROUP_FIELDS = ("dataset", "split", "setting", "teacher", "student", "loss", "tag", "seed")
DEFAULT_BY = ["dataset", "teacher", "loss", "setting"]
COLUMNS = [
    ("teacher val", "teacher", "val_acc"),
    ("teacher test", "teacher", "test_acc"),
    ("teacher ind", "teacher", "test_acc_ind"),
    ("student val", "student", "val_acc"),
    ("student test", "student", "test_acc"),
    ("student ind", "student", "test_acc_ind"),
    ("student prod", "student", "test_acc_prod"),
    # the label-only MLP beside the student (g2m/run/baseline.py), and student - baseline
    ("baseline val", "baseline", "val_acc"),
    ("baseline test", "baseline", "test_acc"),
    ("gain test", "distillation_gain", "test"),
]
TIMINGS = [
    ("wall s/run", "wall_seconds", 1.0),
    ("teacher ms", "teacher_inference_ms", 1.0),
    ("student ms", "student_inference_ms", 1.0),
]


def default_by(runs: list[dict]) -> list[str]:
    """:data:`DEFAULT_BY`, plus ``student`` when the runs have several students (an ``mlp``
    and an ``mlpw4`` run are never averaged together) and ``tag`` when a run has one."""
    students = {run["student"]["name"] for run in runs}
    by = DEFAULT_BY[:2] + ["student"] * (len(students) > 1) + DEFAULT_BY[2:3]
    return by + ["tag"] * any(run.get("tag") for run in runs) + DEFAULT_BY[3:]


def group_key(run: dict, by: list[str]) -> tuple:
    fields = {
        "dataset": run["dataset"],
        "split": run.get("split"),
        "setting": run["setting"],
        "teacher": run.get("teacher", {}).get("name"),  # none: a label-only student
        "student": run["student"]["name"],
        "loss": run["student"].get("loss"),
        "tag": run.get("tag"),
        "seed": run["seed"],
    }
    return tuple(fields[b] for b in by)


def _mean_std(values: list[float], scale: float) -> tuple[float, float] | None:
    if not values:
        return None
    std = statistics.pstdev(values) if len(values) > 1 else 0.0
    return scale * statistics.mean(values), scale * std


def summarise(runs: list[dict], by: list[str]) -> list[dict]:
    """One row per group: key fields, ``n``, and (mean, std) per column."""
    groups: dict[tuple, list[dict]] = defaultdict(list)
    for run in runs:
        groups[group_key(run, by)].append(run)
    rows = []
    for key in sorted(groups, key=lambda k: tuple(str(x) for x in k)):
        members = groups[key]
        row = dict(zip(by, key, strict=True)) | {"n": len(members)}
        # the run to ship: best student *validation* accuracy (never test)
        row["best run"] = max(members, key=lambda m: m["student"]["val_acc"])["path"]
        for label, stage, field in COLUMNS:
            blocks = [m.get(stage, {}) for m in members]
            row[label] = _mean_std([b[field] for b in blocks if field in b], 100)
        for label, field, scale in TIMINGS:
            values = [m["timings"][field] for m in members if m["timings"].get(field) is not None]
            row[label] = _mean_std(values, scale)
        rows.append(row)
    return rows


def _present(rows: list[dict], by: list[str]) -> list[str]:
    labels = [c[0] for c in COLUMNS] + [t[0] for t in TIMINGS]
    return by + ["n"] + [label for label in labels if any(r[label] is not None for r in rows)]


def to_markdown(rows: list[dict], by: list[str]) -> str:
    cols = _present(rows, by)

    def cell(row, col):
        value = row[col]
        if isinstance(value, tuple):
            return f"{value[0]:.2f} ± {value[1]:.2f}"
        if col == "tag" and value is None:
            return ""
        return "-" if value is None else str(value)

    lines = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    lines += ["| " + " | ".join(cell(r, c) for c in cols) + " |" for r in rows]
    return "\n".join(lines)


def write_csv(rows: list[dict], by: list[str], path: Path) -> None:
    cols = _present(rows, by)
    header = []
    for col in cols:
        header += [f"{col} mean", f"{col} std"] if col not in by + ["n"] else [col]
    with open(path, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(header)
        for row in rows:
            out = []
            for col in cols:
                value = row[col]
                if col in by or col == "n":
                    out.append(value)
                else:
                    out += ["", ""] if value is None else [f"{value[0]:.4f}", f"{value[1]:.4f}"]
            writer.writerow(out)


def write_report(out: Path, rows: list[dict], by: list[str], table: str, times: dict) -> None:
    """``report.md``, ``report.csv`` and both figures into ``out``, each file whole or not
    at all (a temporary name renamed into place)."""
    from g2m.report.plots import plot_accuracy, plot_tradeoff

    write_output(out / "report.md", lambda tmp: tmp.write_text(table + "\n"))
    write_output(out / "report.csv", lambda tmp: write_csv(rows, by, tmp))
    write_output(out / "accuracy.png", lambda tmp: plot_accuracy(rows, by, tmp))
    write_output(out / "tradeoff.png", lambda tmp: plot_tradeoff(rows, by, tmp, times))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m g2m.report", description=__doc__.splitlines()[0]
    )
    parser.add_argument("runs", nargs="+", type=Path, help="run or sweep directories")
    parser.add_argument("--out", type=Path, default=Path("report"))
    parser.add_argument(
        "--times",
        choices=["measure", "recorded"],
        default="measure",
        help="tradeoff.png's inference times: timed now, each distinct model once on --device "
        "(default), or as the runs recorded them (fast, but taken under whatever load there was)",
    )
    parser.add_argument("--device", default="cpu", help="where --times measure times (cpu, cuda)")
    parser.add_argument(
        "--by",
        nargs="+",
        choices=GROUP_FIELDS,
        help=f"group fields (default: {' '.join(DEFAULT_BY)}, plus student when the runs have "
        "several and tag when a run has one)",
    )
    args = parser.parse_args(argv)
    check_output(args.out, "--out", folder=True)
    runs = load_runs(args.runs)
    if args.by is None:
        args.by = default_by(runs)
    rows = summarise(runs, args.by)
    table = to_markdown(rows, args.by)
    best = "\n".join(f"- {', '.join(str(r[b]) for b in args.by)}: `{r['best run']}`" for r in rows)
    table += "\n\nBest student per group, by validation accuracy:\n" + best
    from g2m.report.timing import InferenceTimer, recorded

    timer = InferenceTimer(args.device) if args.times == "measure" else None
    times = {
        id(row): timer.times(row["best run"]) if timer else recorded(Path(row["best run"]))
        for row in rows
    }
    write_report(args.out, rows, args.by, table, times)
    print(table)
    print(f"\nreport.md, report.csv, accuracy.png, tradeoff.png written to {args.out}")
