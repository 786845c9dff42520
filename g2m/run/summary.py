"""The short table printed at the end of a run."""

from __future__ import annotations

from pathlib import Path
from typing import Any


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{100 * value:6.2f}"


def stage_order(metrics: dict[str, Any]) -> list[str]:
    """The stage blocks of a metrics dict: teacher, the extra stages, student, and the
    label-only baseline (:mod:`g2m.run.baseline`)."""
    extra = [
        k
        for k, v in metrics.items()
        if k not in ("teacher", "student", "baseline") and isinstance(v, dict) and "val_acc" in v
    ]
    return [s for s in ("teacher", *extra, "student", "baseline") if s in metrics]


def format_summary(
    metrics: dict[str, Any],
    run_dir: Path,
    wall_seconds: float | None = None,
    descriptions: dict[str, str] | None = None,
) -> str:
    """Accuracies (percent) of every stage side by side, plus where outputs went.

    ``descriptions`` gives an extra stage's row label (``codebook (K=512, 40 used)``).
    """
    inductive = "test_acc_ind" in metrics["student"]
    cols = ["val", "test"] + (["test_ind", "test_prod"] if inductive else [])
    keys = ["val_acc", "test_acc"] + (["test_acc_ind", "test_acc_prod"] if inductive else [])
    title = (
        f"g2m | {metrics['dataset']} ({metrics['split']}) | {metrics['setting']} | "
        f"seed {metrics['seed']}"
    )
    header = f"{'stage':<30}" + "".join(f"{c:>11}" for c in cols) + f"{'epoch':>8}"
    lines = [title, header, "-" * len(header)]
    for stage in stage_order(metrics):
        block = metrics[stage]
        if stage in ("teacher", "student"):
            label = f"{stage} ({block['name']}" + (
                f", {block['loss']})" if "loss" in block else ")"
            )
        else:
            detail = (descriptions or {}).get(stage)
            label = f"{stage} ({detail})" if detail else stage
        row = f"{label:<30}" + "".join(f"{_pct(block.get(k)):>11}" for k in keys)
        lines.append(row + f"{block.get('best_epoch', '-'):>8}")
    wall = f"wall time {wall_seconds:.1f} s | " if wall_seconds is not None else ""
    lines.append(f"{wall}outputs in {run_dir}")
    return "\n".join(lines)
