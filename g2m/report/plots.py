"""The two figures of ``g2m.report`` (matplotlib, no display needed)."""

from __future__ import annotations

from pathlib import Path

import matplotlib
import matplotlib.ticker

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


def _cluster(row: dict, by: list[str]) -> str:
    parts = [str(row[k]) for k in ("dataset", "setting") if k in by]
    return " / ".join(parts) or "all runs"


def _student_name(row: dict) -> str:
    loss, teacher = row.get("loss", "student"), row.get("teacher", "teacher")
    return "MLP (labels only)" if loss == "supervised" else f"MLP + {loss} from {teacher}"


def _bars(rows: list[dict], by: list[str]) -> dict[str, dict[str, tuple[float, float]]]:
    """``{cluster: {method: (mean, std)}}`` with one teacher bar per teacher name."""
    clusters: dict[str, dict[str, tuple[float, float]]] = {}
    for row in rows:
        methods = clusters.setdefault(_cluster(row, by), {})
        teacher = row.get("teacher", "teacher")
        if row["teacher test"] is not None:
            methods.setdefault(f"{teacher} (teacher)", row["teacher test"])
        if row["student test"] is not None:
            methods[_student_name(row)] = row["student test"]
    return clusters


def plot_accuracy(rows: list[dict], by: list[str], path: Path) -> Path:
    """Grouped bars of test accuracy (%), ±1 std over seeds."""
    clusters = _bars(rows, by)
    methods = sorted({m for c in clusters.values() for m in c})
    width = 0.8 / max(len(methods), 1)
    fig, ax = plt.subplots(figsize=(max(6, 1.6 * len(clusters) * max(len(methods), 2) / 2), 4.5))
    for i, method in enumerate(methods):
        xs = [j + i * width for j, c in enumerate(clusters) if method in clusters[c]]
        vals = [clusters[c][method] for c in clusters if method in clusters[c]]
        ax.bar(xs, [v[0] for v in vals], width, yerr=[v[1] for v in vals], capsize=4, label=method)
    ax.set_xticks([j + width * (len(methods) - 1) / 2 for j in range(len(clusters))])
    ax.set_xticklabels(list(clusters))
    lows = [v[0] - v[1] for c in clusters.values() for v in c.values()]
    ax.set_ylim(max(0, min(lows, default=0) - 5), 100)
    ax.set_ylabel("test accuracy (%), mean ± std over seeds")
    ax.set_title("Test accuracy per method")
    ax.legend(fontsize=8, loc="upper center", bbox_to_anchor=(0.5, -0.1), ncol=2, frameon=False)
    ax.grid(axis="y", alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def plot_tradeoff(rows: list[dict], by: list[str], path: Path) -> Path:
    """Test accuracy against inference time over all nodes (log scale), teacher vs student."""
    fig, ax = plt.subplots(figsize=(6.5, 4.5))
    for row in rows:
        label = _cluster(row, by)
        for stage, marker in (("teacher", "s"), ("student", "o")):
            acc, ms = row[f"{stage} test"], row[f"{stage} ms"]
            if acc is None or ms is None:
                continue
            teacher = row.get("teacher", "teacher")
            name = teacher if stage == "teacher" else _student_name(row)
            ax.errorbar(ms[0], acc[0], yerr=acc[1], fmt=marker, capsize=4, label=f"{label}: {name}")
    ax.set_xscale("log")
    ax.xaxis.set_major_formatter(matplotlib.ticker.ScalarFormatter())
    ax.xaxis.set_minor_formatter(matplotlib.ticker.ScalarFormatter())
    ax.set_xlabel("inference time over all nodes (ms, CPU, log scale)")
    ax.set_ylabel("test accuracy (%), mean ± std")
    ax.set_title("Accuracy vs inference time")
    ax.grid(alpha=0.3, which="both")
    handles, labels = ax.get_legend_handles_labels()
    unique = dict(zip(labels, handles, strict=True))
    ax.legend(
        unique.values(),
        unique.keys(),
        fontsize=8,
        loc="upper center",
        bbox_to_anchor=(0.5, -0.15),
        ncol=2,
        frameon=False,
    )
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path
