"""The two figures of ``g2m.report`` (matplotlib, no display needed).

- ``accuracy.png``: for each dataset and setting, every method's test accuracy as a point with
  its seed standard deviation, the number of seeds beside it, the axis drawn over the data's
  own range (said on the axis), so that small differences look as small as they are.
- ``leaderboard.png`` (``g2m.report.leaderboard``): per dataset and setting, each method's
  paired difference to the reference with ±2 standard errors, zero marked: a bar that
  crosses zero is no win.
- ``tradeoff.png``: GLNN's Figure 1 — test accuracy against inference time over every node,
  teachers (squares) and students (circles), one point per method, the times from one
  controlled pass (:mod:`g2m.report.timing`) with their spread, ticks covering every point.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import matplotlib
import matplotlib.ticker

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

COLUMNS_PER_ROW = 3


def cluster_of(row: dict, by: list[str]) -> str:
    parts = [str(row[k]) for k in ("dataset", "setting") if k in by]
    return " · ".join(parts) or "all runs"


def student_name(row: dict) -> str:
    loss, teacher = row.get("loss") or "student", row.get("teacher")
    tag = f" [{row['tag']}]" if row.get("tag") else ""
    if loss == "supervised":
        return f"MLP, labels only{tag}"
    return f"MLP ← {teacher} ({loss}){tag}"


def points(rows: list[dict], by: list[str]) -> dict[str, list[dict[str, Any]]]:
    """``{cluster: [{name, kind, acc, n, row}]}``: each group's student, and one point per
    teacher (the teacher shared by a dataset's groups is drawn once)."""
    clusters: dict[str, list[dict[str, Any]]] = {}
    for row in rows:
        items = clusters.setdefault(cluster_of(row, by), [])
        teacher = row.get("teacher")
        if row["teacher test"] is not None and teacher:
            name = f"{teacher} (teacher)"
            if not any(p["name"] == name for p in items):
                items.append({"name": name, "kind": "teacher", "acc": row["teacher test"],
                              "n": row["n"], "row": row})  # fmt: skip
        if row["student test"] is not None:
            items.append({"name": student_name(row), "kind": "student",
                          "acc": row["student test"], "n": row["n"], "row": row})  # fmt: skip
    return clusters


def _grid(count: int, width: float, height: float) -> tuple[Any, list[Any]]:
    cols = min(COLUMNS_PER_ROW, max(count, 1))
    grid_rows = math.ceil(max(count, 1) / cols)
    fig, axes = plt.subplots(
        grid_rows, cols, figsize=(width * cols, height * grid_rows), squeeze=False
    )
    flat = [ax for line in axes for ax in line]
    for ax in flat[count:]:
        ax.set_visible(False)
    return fig, flat


def plot_accuracy(rows: list[dict], by: list[str], path: Path) -> Path:
    """Test accuracy per method and cluster: mean ± std over seeds, n beside each point."""
    clusters = points(rows, by)
    height = 0.45 * max(len(v) for v in clusters.values()) + 1.4 if clusters else 2
    fig, axes = _grid(len(clusters), 6.0, height)
    for ax, (cluster, items) in zip(axes, clusters.items(), strict=False):
        items = sorted(items, key=lambda p: (p["kind"] != "teacher", p["acc"][0]))
        for y, item in enumerate(items):
            mean, std = item["acc"]
            colour = "0.35" if item["kind"] == "teacher" else "C0"
            marker = "s" if item["kind"] == "teacher" else "o"
            ax.errorbar(mean, y, xerr=std, fmt=marker, color=colour, capsize=3, ms=6)
            label = f"n={item['n']}"
            ax.annotate(label, (mean + std, y), xytext=(4, 0), textcoords="offset points",
                        va="center", fontsize=7, color="0.4")  # fmt: skip
        lows = [p["acc"][0] - p["acc"][1] for p in items]
        highs = [p["acc"][0] + p["acc"][1] for p in items]
        pad = max(1.0, 0.15 * (max(highs) - min(lows)))
        ax.set_xlim(min(lows) - pad, max(highs) + 2.5 * pad)
        ax.set_yticks(range(len(items)), [p["name"] for p in items], fontsize=8)
        ax.set_ylim(-0.7, len(items) - 0.3)
        ax.set_title(cluster, fontsize=10)
        ax.set_xlabel("test accuracy (%), axis over the data's range", fontsize=8)
        ax.grid(axis="x", alpha=0.3)
    fig.suptitle(
        "Test accuracy at the validation-selected epoch: mean ± std over seeds", fontsize=11
    )
    fig.tight_layout()
    fig.savefig(path, dpi=150, format="png")  # path may be a temporary name
    plt.close(fig)
    return path


def plot_tradeoff(rows: list[dict], by: list[str], path: Path, times: dict[int, dict]) -> Path:
    """Test accuracy against inference time over all nodes (log scale), per cluster.

    ``times[id(row)]`` is ``{"teacher": Timed | None, "student": Timed | None}``.
    """
    clusters = points(rows, by)
    fig, axes = _grid(len(clusters), 5.6, 4.4)
    devices, recorded = set(), False
    for ax, (cluster, items) in zip(axes, clusters.items(), strict=False):
        xs = []
        for item in items:
            timed = times.get(id(item["row"]), {}).get(item["kind"])
            if timed is None or timed.median is None:
                continue
            devices.add(timed.device)
            recorded |= not timed.measured
            mean, std = item["acc"]
            xerr = [[timed.median - timed.low], [timed.high - timed.median]]
            teacher = item["kind"] == "teacher"
            ax.errorbar(timed.median, mean, xerr=xerr, yerr=std, capsize=3, ms=7,
                        fmt="s" if teacher else "o", color="0.35" if teacher else "C0")  # fmt: skip
            ax.annotate(item["name"], (timed.median, mean), xytext=(7, -11 if teacher else 5),
                        textcoords="offset points", fontsize=7)  # fmt: skip
            xs += [timed.low, timed.high]
        ax.set_xscale("log")
        if xs:
            ax.set_xlim(min(xs) / 2, max(xs) * 4)  # room for the labels on the right
        ax.xaxis.set_major_locator(matplotlib.ticker.LogLocator(base=10, subs=(1.0, 2.0, 5.0)))
        ax.xaxis.set_major_formatter(matplotlib.ticker.FuncFormatter(lambda v, _: f"{v:g}"))
        ax.xaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
        ax.set_title(cluster, fontsize=10)
        ax.set_ylabel("test accuracy (%), mean ± std", fontsize=8)
        ax.grid(alpha=0.3, which="both")
    where = ", ".join(sorted(devices)) or "?"
    how = "as recorded by the runs (under unknown load)" if recorded else "median ± IQR, one pass"
    for ax in axes[: len(clusters)]:
        ax.set_xlabel(f"inference over every node, ms on {where} ({how}), log scale", fontsize=8)
    fig.suptitle("Accuracy against inference time: teachers (■) and students (●)", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=150, format="png")  # path may be a temporary name
    plt.close(fig)
    return path


def plot_paired(entries: list[Any], reference: str, path: Path) -> Path:
    """Paired differences to ``reference`` (points) with ±2 SE (bars), one panel per
    dataset × setting; methods in the order of their difference; a cross where the method's
    paper claims a gain over the reference (``entry.published.claimed_gain``)."""
    groups: dict[tuple[str, str], list[Any]] = {}
    label_only: dict[tuple[str, str], list[Any]] = {}  # far below: named, not drawn
    for e in entries:
        if e.delta is not None:
            target = groups if e.teacher is not None else label_only
            target.setdefault((e.dataset, e.setting), []).append(e)
    fig, axes = _grid(
        len(groups), 4.8, 0.45 * max((len(v) for v in groups.values()), default=1) + 1.2
    )
    for ax, ((dataset, setting), rows) in zip(axes, sorted(groups.items()), strict=False):
        rows = sorted(rows, key=lambda e: e.delta[0])
        y = list(range(len(rows)))
        ax.errorbar([e.delta[0] for e in rows], y, xerr=[2 * e.delta[1] for e in rows],
                    fmt="o", color="black", ecolor="grey", capsize=3)  # fmt: skip
        ax.axvline(0.0, color="tab:red", linewidth=1)
        claimed = [(e.published.claimed_gain, i) for i, e in enumerate(rows)
                   if e.published is not None and e.published.claimed_gain is not None]  # fmt: skip
        if claimed:
            ax.plot(*zip(*claimed, strict=True), "x", color="tab:blue", markersize=8,
                    label="the paper's claimed gain")  # fmt: skip
            ax.legend(loc="lower right", fontsize="small")
        ax.set_yticks(y, [f"{e.method} (n={e.pairs})" for e in rows])
        notes = [
            f"{e.method}: {e.delta[0]:+.1f} ± {2 * e.delta[1]:.1f} (off the axis)"
            for e in label_only.get((dataset, setting), [])
        ]
        label = f"test accuracy minus {reference}'s, points (±2 SE)"
        ax.set_xlabel("\n".join([label, *notes]))
        ax.set_title(f"{dataset}, {setting}")
    fig.tight_layout()
    fig.savefig(path, dpi=150, format="png")  # path may be a temporary name
    plt.close(fig)
    return path
