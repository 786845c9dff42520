"""Model selection on validation accuracy, with an explicit rule for ties.

Small validation sets (CPF: 30 nodes per class) make exact ties in accuracy common. Two rules:

- ``first``: keep the earliest epoch that reached the best accuracy (Lightning's default);
- ``latest``: a tie also counts as an improvement, so the checkpoint moves to the later,
  longer-trained model and the patience counter restarts — the ``>=`` rule of GLNN's and
  VQGraph's training loops (``if score_val >= best_score_val``).
"""

from __future__ import annotations

import lightning.pytorch as pl
import torch
from lightning.pytorch.callbacks import EarlyStopping, ModelCheckpoint

from g2m.errors import ConfigError

TIE_RULES = ("first", "latest")
# accuracies are exact fractions k / |val|: any real difference is >= 1 / |val| >> this
TIE_TOLERANCE = 1e-7


class LatestBestCheckpoint(ModelCheckpoint):
    """Best-validation checkpoint (``save_top_k=1``) where a tie replaces the kept one."""

    def check_monitor_top_k(self, trainer: pl.Trainer, current: torch.Tensor | None = None) -> bool:
        if current is None or not self.best_k_models:
            return super().check_monitor_top_k(trainer, current)
        best = self.best_k_models[self.kth_best_model_path]
        op = torch.ge if self.mode == "max" else torch.le
        return trainer.strategy.reduce_boolean_decision(bool(op(current, best)))


def selection_callbacks(
    monitor: str, patience: int, dirpath: str, on_tie: str
) -> tuple[ModelCheckpoint, EarlyStopping]:
    """Checkpoint + early stopping on ``monitor`` (mode max) under the tie rule ``on_tie``."""
    if on_tie not in TIE_RULES:
        raise ConfigError(f"selection.on_tie must be one of {TIE_RULES}, got '{on_tie}'.")
    checkpoint_cls = LatestBestCheckpoint if on_tie == "latest" else ModelCheckpoint
    checkpoint = checkpoint_cls(
        dirpath=dirpath,
        filename="best",
        monitor=monitor,
        mode="max",
        save_top_k=1,
        save_last=True,  # full state every epoch: what an interrupted stage resumes from
        enable_version_counter=False,
    )
    stopping = EarlyStopping(
        monitor=monitor,
        mode="max",
        patience=patience,
        check_finite=True,
        min_delta=-TIE_TOLERANCE if on_tie == "latest" else 0.0,
    )
    return checkpoint, stopping
