"""Run one Lightning stage: fit with validation-accuracy selection, then test once.

Early stopping and checkpointing both monitor ``<stage>/val/acc`` (mode max; ties are
resolved by the rule in :mod:`g2m.lit.selection`). The test split is evaluated exactly once, on the
best-validation checkpoint, by ``trainer.test(ckpt_path=...)``.
"""

from __future__ import annotations

import logging
import math
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import lightning.pytorch as pl
import torch

from g2m.errors import RunStopped
from g2m.lit.distributed import (
    SyncBuffersBeforeEvaluation,
    single_device,
    student_trainer_kwargs,
)
from g2m.lit.loggers import StageEpochAxis
from g2m.lit.progress import StageProgressBar
from g2m.lit.safety import AtomicCheckpointIO, StopOnNonFiniteLoss
from g2m.lit.selection import selection_callbacks
from g2m.lit.throughput import TrainThroughput
from g2m.run.settings import StageSchedule, TrainerSettings

log = logging.getLogger("g2m")

# Full-graph stages use in-memory loaders: worker processes would only add overhead.
warnings.filterwarnings("ignore", message=".*does not have many workers.*")
warnings.filterwarnings("ignore", message=".*smaller than the logging interval.*")
# Lightning 2.6 on torch >= 2.10: once per process, about its own use of torch's pytree
warnings.filterwarnings("ignore", message=".*isinstance\\(treespec, LeafSpec\\).*")
# Lightning's start-up chatter (accelerator, tips, checkpoint restores) drowns the summary.
for _name in ("lightning.pytorch", "lightning.fabric"):
    logging.getLogger(_name).setLevel(logging.WARNING)


@dataclass
class StageResult:
    """What a stage reports: best validation score, its epoch, test metrics, timing."""

    val_acc: float
    best_epoch: int
    test: dict[str, float]
    checkpoint: Path
    epochs_run: int
    seconds: float
    throughput: dict[str, float] = field(default_factory=dict)

    def rates(self) -> dict[str, float]:
        """Median seconds per training epoch (and nodes/s where defined), rounded."""
        return {k: round(v, 4) if isinstance(v, float) else v for k, v in self.throughput.items()}

    def metrics(self, inductive: bool) -> dict[str, Any]:
        """The stage's metrics.json block (accuracies as fractions); an inductive run adds
        the held-out accuracy and GLNN's ``prod = 0.8 tran + 0.2 ind``."""
        block = {
            "val_acc": self.val_acc,
            "test_acc": self.test["acc"],
            "best_epoch": self.best_epoch,
            "epochs": self.epochs_run,
        }
        if inductive:
            tran, ind = self.test["acc"], self.test["acc_ind"]
            block |= {"test_acc_ind": ind, "test_acc_prod": 0.8 * tran + 0.2 * ind}
        return block


def fit_and_test(
    system: pl.LightningModule,
    schedule: StageSchedule,
    trainer: TrainerSettings,
    run_dir: Path,
    logger: Any,
    full_graph: bool,
    extra_callbacks: tuple[pl.Callback, ...] = (),
) -> StageResult:
    """Train ``system`` with early stopping on ``<stage>/val/acc``; test the best checkpoint.

    A ``full_graph`` stage runs on one device; the others (the student's mini-batches) on
    every device the trainer asks for (:mod:`g2m.lit.distributed`). ``extra_callbacks``
    watch the run (e.g. ``experiments/vqgraph/selection_gap.py``'s per-epoch test curve);
    selection stays on validation whatever they do.
    """
    stage, max_epochs = schedule.stage, schedule.max_epochs
    trainer_kwargs = (
        single_device(trainer.kwargs) if full_graph else student_trainer_kwargs(trainer.kwargs)
    )
    checkpoint_dir = run_dir / "checkpoints" / stage
    checkpoint, stopping = selection_callbacks(
        f"{stage}/val/acc", schedule.patience, str(checkpoint_dir), trainer.on_tie
    )
    throughput = TrainThroughput()
    callbacks = [
        checkpoint,
        stopping,
        StopOnNonFiniteLoss(stage, str(checkpoint_dir)),
        throughput,  # stops its clock before the buffers are synchronised
        SyncBuffersBeforeEvaluation(),
        StageEpochAxis(stage),
        *extra_callbacks,
    ]
    if trainer_kwargs.pop("enable_progress_bar", True):
        callbacks.append(StageProgressBar(stage))
    fitter = pl.Trainer(
        max_epochs=max_epochs,
        callbacks=callbacks,
        logger=logger,
        log_every_n_steps=1,
        num_sanity_val_steps=0,
        enable_model_summary=False,
        enable_progress_bar=False,
        default_root_dir=str(run_dir),
        plugins=[AtomicCheckpointIO()],
        # loaders shard themselves under DDP (g2m.lit.loaders.NodeBatches); evaluation is
        # replicated on every rank, so no sampler may be injected
        use_distributed_sampler=False,
        **trainer_kwargs,
    )
    start = time.perf_counter()
    last = checkpoint_dir / "last.ckpt"
    if last.is_file():
        log.info("Resuming the %s stage from %s", stage, last)
    try:
        fitter.fit(system, ckpt_path=str(last) if last.is_file() else None)
    except SystemExit as stop:  # Lightning's SIGTERMException, or its exit(1) after Ctrl-C
        raise stopped_by_signal(stage, fitter, run_dir) from stop
    best = Path(checkpoint.best_model_path)
    if not best.is_file():
        raise RuntimeError(f"{stage} stage produced no checkpoint (did validation run?).")
    best_epoch = int(torch.load(best, map_location="cpu", weights_only=False)["epoch"])
    (tested,) = fitter.test(system, ckpt_path=str(best), verbose=False)
    seconds = time.perf_counter() - start
    val = float(checkpoint.best_model_score)
    if not math.isfinite(val):
        raise RuntimeError(f"{stage} stage: best validation accuracy is not finite ({val}).")
    prefix = f"{stage}/test/"
    test = {k[len(prefix) :]: float(v) for k, v in tested.items() if k.startswith(prefix)}
    rates = throughput.summary(getattr(system, "nodes_per_epoch", None))
    result = StageResult(val, best_epoch, test, best, fitter.current_epoch, seconds, rates)
    if fitter.is_global_zero:
        last.unlink(missing_ok=True)  # the stage is finished: its best checkpoint is what stays
        report_stage(stage, result, max_epochs, logger)
    return result


def stopped_by_signal(stage: str, fitter: pl.Trainer, run_dir: Path) -> RunStopped:
    """What to tell the user when a signal ended ``stage``: the run resumes from its last
    finished epoch when the same command is run again into the same directory."""
    name, code = ("SIGTERM", 143) if fitter.received_sigterm else ("Ctrl-C (SIGINT)", 130)
    return RunStopped(
        f"stopped by {name} in the {stage} stage after epoch {fitter.current_epoch}; "
        f"nothing was reported. Run the same command with hydra.run.dir={run_dir} to resume "
        "from the last finished epoch.",
        code,
    )


def report_stage(stage: str, result: StageResult, max_epochs: int, logger: Any) -> None:
    """One log line with what the stage selected, and the selected (not the last) values in
    the logger: W&B's run summary, a final row in a CSV log."""
    why = "stopped early" if result.epochs_run < max_epochs else f"max_epochs={max_epochs}"
    tests = ", ".join(f"{k} {100 * v:.2f}" for k, v in result.test.items())
    log.info(
        "%s: selected epoch %d of %d (%s): val_acc %.2f, test %s; %.1f s",
        stage,
        result.best_epoch,
        result.epochs_run,
        why,
        100 * result.val_acc,
        tests,
        result.seconds,
    )
    if not logger:
        return
    selected = {f"{stage}/val/acc": result.val_acc, f"{stage}/best_epoch": result.best_epoch}
    selected |= {f"{stage}/test/{k}": v for k, v in result.test.items()}
    summary = getattr(getattr(logger, "experiment", None), "summary", None)
    if summary is not None and hasattr(summary, "update"):  # W&B: the run's headline values
        summary.update(selected)
    else:
        logger.log_metrics(
            {
                f"{stage}/selected/val_acc": result.val_acc,
                f"{stage}/selected/epoch": result.best_epoch,
            }
        )
        logger.save()
