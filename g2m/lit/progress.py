"""Progress of a stage: one bar on a terminal, a few plain lines in a log.

Lightning's default bar redraws for every epoch, which for full-graph training (one step
per epoch, hundreds of epochs) floods logs. On a terminal this callback shows a single tqdm
bar over the stage's epochs with the latest training loss and the best validation accuracy
so far. When stderr is not a terminal (a log file, a pipe, a batch job), it draws no bar:
it logs a line when the stage starts, one every tenth of its epoch budget and none more
often than once an epoch, so a log gets about ten lines a stage instead of hundreds of
carriage-return redraws.
"""

from __future__ import annotations

import logging
import math
import sys

import lightning.pytorch as pl
from lightning.pytorch.callbacks import Callback

log = logging.getLogger("g2m")

LINES_PER_STAGE = 10


def is_terminal() -> bool:
    return bool(getattr(sys.stderr, "isatty", lambda: False)())


class StageProgressBar(Callback):
    """``teacher: 37%|███▋      | 185/500 [00:04, loss=0.21, val_acc=0.812, best=0.819]``
    on a terminal; ``teacher: epoch 50/500, loss 0.2100, val_acc 0.8120 (best 0.8190)`` in a
    log (``terminal=None``: decide from stderr)."""

    def __init__(self, stage: str, terminal: bool | None = None):
        self.stage = stage
        self.terminal = is_terminal() if terminal is None else terminal
        self.bar = None
        self.best = float("-inf")
        self.every = 1

    def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        total = trainer.max_epochs
        if self.terminal:
            from tqdm.auto import tqdm

            self.bar = tqdm(total=total, desc=self.stage, unit="epoch", dynamic_ncols=True)
            self.bar.update(trainer.current_epoch)
            return
        self.every = max(1, math.ceil(total / LINES_PER_STAGE))
        start = f" from epoch {trainer.current_epoch}" if trainer.current_epoch else ""
        log.info("%s: training for up to %d epochs%s", self.stage, total, start)

    def on_train_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        metrics = trainer.callback_metrics
        shown = {}
        loss = metrics.get(f"{self.stage}/train/loss")
        if loss is not None:
            shown["loss"] = f"{float(loss):.4f}"
        val = metrics.get(f"{self.stage}/val/acc")
        if val is not None:
            self.best = max(self.best, float(val))
            shown |= {"val_acc": f"{float(val):.4f}", "best": f"{self.best:.4f}"}
        epoch = trainer.current_epoch + 1
        if self.bar is not None:
            self.bar.set_postfix(shown, refresh=False)
            self.bar.update(1)
        elif epoch % self.every == 0:
            text = ", ".join(f"{k} {v}" for k, v in shown.items() if k != "best")
            best = f" (best {shown['best']})" if "best" in shown else ""
            log.info("%s: epoch %d/%d, %s%s", self.stage, epoch, trainer.max_epochs, text, best)

    def on_train_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None
