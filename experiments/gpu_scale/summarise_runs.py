"""Print a Markdown table of finished runs: stage seconds, the student's training rate, and
the accuracies of both stages and of the label-only MLP where the run trained it (from each
run's metrics.json and timings.json).

    python experiments/gpu_scale/summarise_runs.py RUN_DIR [RUN_DIR ...]
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

COLUMNS = [
    ("run", lambda m, t, d: d.name),
    ("teacher s", lambda m, t, d: t.get("teacher_seconds")),
    ("reused", lambda m, t, d: ",".join(t.get("reused_from_store", [])) or "-"),
    ("codebook s", lambda m, t, d: t.get("codebook_seconds", "-")),
    ("student s", lambda m, t, d: t.get("student_seconds")),
    ("student epochs", lambda m, t, d: m["student"]["epochs"]),
    ("s/epoch", lambda m, t, d: t.get("student_epoch_seconds")),
    ("M nodes/s", lambda m, t, d: round(t.get("student_nodes_per_s", 0) / 1e6, 2)),
    ("wall s", lambda m, t, d: t.get("wall_seconds")),
    ("peak GiB", lambda m, t, d: t.get("peak_gpu_memory_gb")),
    ("teacher val/test", lambda m, t, d: _acc(m.get("teacher", {}))),
    ("student val/test", lambda m, t, d: _acc(m["student"])),
    ("label-only MLP val/test", lambda m, t, d: _acc(m.get("baseline", {}))),
]


def _acc(block: dict) -> str:
    if "val_acc" not in block:
        return "-"
    return f"{100 * block['val_acc']:.2f} / {100 * block['test_acc']:.2f}"


def main(dirs: list[str]) -> None:
    print("| " + " | ".join(c for c, _ in COLUMNS) + " |")
    print("|" + "---|" * len(COLUMNS))
    for name in dirs:
        run = Path(name)
        if not (run / "metrics.json").is_file():
            print(f"| {run.name} | (no metrics.json: failed or unfinished) |")
            continue
        metrics = json.loads((run / "metrics.json").read_text())
        timings = json.loads((run / "timings.json").read_text())
        print("| " + " | ".join(str(f(metrics, timings, run)) for _, f in COLUMNS) + " |")


if __name__ == "__main__":
    main(sys.argv[1:])
