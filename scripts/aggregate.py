"""Aggregate ``metrics.json`` files into a mean ± std Markdown table.

Usage: ``python scripts/aggregate.py DIR [DIR ...] [--by dataset setting teacher loss]``.
Every ``metrics.json`` below the given folders is one run (one seed). Accuracies are shown
in percent; ``n`` is the number of runs (seeds) in each group.
"""

from __future__ import annotations

import argparse
import json
import statistics
from collections import defaultdict
from pathlib import Path

COLUMNS = [
    ("teacher val", "teacher", "val_acc"),
    ("teacher test", "teacher", "test_acc"),
    ("teacher ind", "teacher", "test_acc_ind"),
    ("student val", "student", "val_acc"),
    ("student test", "student", "test_acc"),
    ("student ind", "student", "test_acc_ind"),
    ("student prod", "student", "test_acc_prod"),
]


def group_key(m: dict, by: list[str]) -> tuple:
    fields = {
        "dataset": m["dataset"],
        "split": m.get("split"),
        "setting": m["setting"],
        "teacher": m["teacher"]["name"],
        "student": m["student"]["name"],
        "loss": m["student"].get("loss"),
        "seed": m["seed"],
    }
    return tuple(fields[b] for b in by)


def mean_std(values: list[float]) -> str:
    if not values:
        return "-"
    std = statistics.pstdev(values) if len(values) > 1 else 0.0
    return f"{100 * statistics.mean(values):.2f} ± {100 * std:.2f}"


def table(runs: list[dict], by: list[str]) -> str:
    groups: dict[tuple, list[dict]] = defaultdict(list)
    for m in runs:
        groups[group_key(m, by)].append(m)
    cols = [c for c in COLUMNS if any(c[2] in m[c[1]] for m in runs)]
    header = by + ["n"] + [c[0] for c in cols] + ["wall s/run"]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for key in sorted(groups, key=lambda k: tuple(str(x) for x in k)):
        ms = groups[key]
        cells = [str(k) for k in key] + [str(len(ms))]
        cells += [mean_std([m[s][f] for m in ms if f in m[s]]) for _, s, f in cols]
        walls = [m["wall_seconds"] for m in ms if m.get("wall_seconds") is not None]
        cells.append(f"{statistics.mean(walls):.1f}" if walls else "-")
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def load_run(metrics_path: Path) -> dict:
    """A run's metrics, with ``wall_seconds`` from ``timings.json`` beside it if present."""
    run = json.loads(metrics_path.read_text())
    timings = metrics_path.with_name("timings.json")
    if timings.is_file():
        run["wall_seconds"] = json.loads(timings.read_text()).get("wall_seconds")
    return run


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("dirs", nargs="+", type=Path)
    parser.add_argument("--by", nargs="+", default=["dataset", "setting", "teacher", "loss"])
    args = parser.parse_args()
    runs = [load_run(p) for d in args.dirs for p in sorted(d.rglob("metrics.json"))]
    if not runs:
        raise SystemExit(f"no metrics.json under {', '.join(map(str, args.dirs))}")
    print(table(runs, args.by))


if __name__ == "__main__":
    main()
