"""Training throughput of a stage: seconds per epoch of training steps, and nodes per second.

The clock runs from the start of an epoch to the start of its validation (or the epoch's
end), with the device synchronised at both ends, so validation is not counted. The first
epoch carries one-off costs (kernel selection, allocator growth); the figures use the
median epoch. A system that declares ``nodes_per_epoch`` (the student: every observed node,
summed over all ranks) also gets nodes per second. Under DDP every rank steps in lockstep
(gradients are all-reduced each step), so rank 0's clock measures the whole stage.
"""

from __future__ import annotations

import statistics
import time

import lightning.pytorch as pl
import torch
from lightning.pytorch.callbacks import Callback


def _now(module: pl.LightningModule) -> float:
    if module.device.type == "cuda":
        torch.cuda.synchronize(module.device)
    return time.perf_counter()


class TrainThroughput(Callback):
    """Collects the training seconds of every epoch (see the module docstring)."""

    def __init__(self) -> None:
        self.epoch_seconds: list[float] = []
        self._start: float | None = None

    def on_train_epoch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._start = _now(pl_module)

    def _stop(self, pl_module: pl.LightningModule) -> None:
        if self._start is not None:
            self.epoch_seconds.append(_now(pl_module) - self._start)
            self._start = None

    def on_validation_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if trainer.training:
            self._stop(pl_module)

    def on_train_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._stop(pl_module)

    def summary(self, nodes_per_epoch: int | None) -> dict[str, float]:
        """``epoch_seconds`` (median) and, given ``nodes_per_epoch``, ``nodes_per_s``."""
        if not self.epoch_seconds:
            return {}
        median = statistics.median(self.epoch_seconds)
        out = {"epoch_seconds": median, "epochs_timed": len(self.epoch_seconds)}
        if nodes_per_epoch:
            out["nodes_per_s"] = nodes_per_epoch / median
        return out
