"""One progress bar per stage (epochs, with the validation accuracy), not one per epoch.

Lightning's default bar redraws for every epoch, which for full-graph training (one step
per epoch, hundreds of epochs) floods logs. This callback shows a single tqdm bar over the
stage's epochs with the latest training loss and best validation accuracy so far.
"""

from __future__ import annotations

import lightning.pytorch as pl
from lightning.pytorch.callbacks import Callback
from tqdm.auto import tqdm


class StageProgressBar(Callback):
    """``teacher: 37%|███▋      | 185/500 [00:04, loss=0.21, val_acc=0.812, best=0.819]``."""

    def __init__(self, stage: str):
        self.stage = stage
        self.bar: tqdm | None = None
        self.best = float("-inf")

    def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self.bar = tqdm(
            total=trainer.max_epochs, desc=self.stage, unit="epoch", dynamic_ncols=True, leave=True
        )

    def on_train_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        metrics = trainer.callback_metrics
        postfix = {}
        loss = metrics.get(f"{self.stage}/train/loss")
        if loss is not None:
            postfix["loss"] = f"{float(loss):.4f}"
        val = metrics.get(f"{self.stage}/val/acc")
        if val is not None:
            self.best = max(self.best, float(val))
            postfix |= {"val_acc": f"{float(val):.4f}", "best": f"{self.best:.4f}"}
        if self.bar is not None:
            self.bar.set_postfix(postfix, refresh=False)
            self.bar.update(1)

    def on_train_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None
