"""How much test-set selection adds: g2m's reported accuracy against the released VQGraph
code's (a diagnostic, never a way to choose anything).

g2m tests the student once, at its best-*validation* epoch. The released VQGraph code's
transductive distillation loop instead keeps the epoch of best *test* accuracy (its
``distill_run_transductive`` compares test accuracies for the checkpoint and for early
stopping), so its reported figure is close to :math:`\\max_e \\mathrm{acc}_{test}(e)`.
This script measures the difference on finished g2m runs:

1. it reloads each run's config and stored artifacts (``teacher.pt``, ``codebook.pt``);
2. it retrains the student exactly as the run did, with a callback that records the test
   accuracy after every validation pass (selection and early stopping stay on validation);
3. it prints, per (dataset, setting, loss): the accuracy g2m reports (test at the
   best-validation epoch), the maximum over the epochs of the test accuracy, and the gap.

The retrained student's reported accuracy is checked against the run's ``metrics.json``
(on a CPU both are bit-identical; on a GPU they may differ slightly). The maximum runs over
the epochs g2m trained (until validation patience ran out), not over the release's
test-patience schedule, so it is a lower bound on what test selection gives there.

    python experiments/vqgraph/selection_gap.py multirun/vq-rows-cpu/cora --out gap.json

Arguments are finished run directories or folders above them (every ``metrics.json``
below is used). Run it from the directory the runs were started in: a run's
``teacher.artifact`` path is stored as it was given.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
from collections import defaultdict
from pathlib import Path

import lightning.pytorch as pl
import torch

VAL_KEY = "student/val/acc"


class TestCurve(pl.Callback):
    """Records ``{epoch, val, test[, test_ind]}`` after each validation pass of a student.

    Reads only; it never logs, so neither the checkpoint nor early stopping can see it.
    """

    def __init__(self) -> None:
        self.rows: list[dict[str, float]] = []

    @torch.no_grad()
    def on_validation_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if trainer.sanity_checking:
            return
        row = {"epoch": trainer.current_epoch, "val": float(trainer.callback_metrics[VAL_KEY])}
        model, nodes = pl_module.model, pl_module.nodes
        was_training = model.training
        model.eval()
        for part in ("test", "test_ind"):
            idx = getattr(pl_module.split, part).to(nodes["x"].device)
            if idx.numel():
                predicted = model(nodes["x"][idx]).argmax(-1)
                row[part] = float((predicted == nodes["y"][idx]).float().mean())
        model.train(was_training)
        self.rows.append(row)


def finished_runs(paths: list[str]) -> list[Path]:
    """Every run directory (one holding ``metrics.json`` and ``config.yaml``) under ``paths``."""
    runs = []
    for path in map(Path, paths):
        if not path.exists():
            sys.exit(f"error: {path} does not exist (give finished g2m run directories).")
        found = [m.parent for m in sorted(path.rglob("metrics.json"))]
        runs += [r for r in found if (r / "config.yaml").is_file()]
    if not runs:
        sys.exit(f"error: no finished g2m run (metrics.json + config.yaml) under {paths}.")
    return runs


def measure(run_dir: Path) -> dict:
    """Retrain ``run_dir``'s student with a :class:`TestCurve`; return both figures."""
    from omegaconf import OmegaConf

    from g2m.run.build import build_run
    from g2m.run.pipeline import distil, prepare

    cfg = OmegaConf.load(run_dir / "config.yaml")
    cfg.logger = None
    cfg.trainer.enable_progress_bar = False
    state = prepare(build_run(cfg), run_dir)  # the run's own teacher.pt and <stage>.pt
    if state.teacher is None or None in state.artifacts.values():
        raise FileNotFoundError(f"{run_dir}: its teacher.pt or an extra stage's .pt is missing.")
    curve = TestCurve()
    with tempfile.TemporaryDirectory() as scratch:
        state.run_dir = Path(scratch)
        pl.seed_everything(state.plan.seed, workers=True, verbose=False)
        _, result, _ = distil(state, (curve,))
    recorded = json.loads((run_dir / "metrics.json").read_text())["student"]
    key = "test" if cfg.setting.name == "transductive" else "test_ind"
    best = max(curve.rows, key=lambda row: row[key])
    return {
        "run": str(run_dir),
        "dataset": cfg.dataset.name,
        "setting": cfg.setting.name,
        "loss": cfg.loss.name,
        "tag": cfg.get("tag"),
        "seed": int(cfg.seed),
        "reported": result.test["acc" if key == "test" else "acc_ind"],
        "recorded": recorded["test_acc" if key == "test" else "test_acc_ind"],
        "best_val_epoch": result.best_epoch,
        "max_test": best[key],
        "max_test_epoch": best["epoch"],
        "epochs": len(curve.rows),
    }


def summarise(rows: list[dict]) -> str:
    groups: dict[tuple, list[dict]] = defaultdict(list)
    for row in rows:
        groups[(row["dataset"], row["setting"], row["loss"], row["tag"] or "")].append(row)
    lines = [
        "| dataset | setting | loss | seeds | g2m: test at best val | max over epochs of test "
        "| gap | reproduced metrics.json |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for (dataset, setting, loss, tag), group in sorted(groups.items()):
        reported = statistics.mean(100 * r["reported"] for r in group)
        peak = statistics.mean(100 * r["max_test"] for r in group)
        same = sum(abs(r["reported"] - r["recorded"]) < 1e-6 for r in group)
        name = f"{loss} ({tag})" if tag else loss
        lines.append(
            f"| {dataset} | {setting} | {name} | {len(group)} | {reported:.2f} | {peak:.2f} "
            f"| +{peak - reported:.2f} | {same} of {len(group)} |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("runs", nargs="+", help="finished run directories or folders above them")
    parser.add_argument("--out", type=Path, help="also write every run's figures as JSON here")
    args = parser.parse_args(argv)
    rows = []
    for run_dir in finished_runs(args.runs):
        rows.append(measure(run_dir))
        r = rows[-1]
        print(
            f"{run_dir}: reported {100 * r['reported']:.2f} (epoch {r['best_val_epoch']}), "
            f"max test {100 * r['max_test']:.2f} (epoch {r['max_test_epoch']})",
            flush=True,
        )
    print(summarise(rows))
    if args.out:
        from g2m.io import atomic_json

        atomic_json(rows, args.out)


if __name__ == "__main__":
    main()
