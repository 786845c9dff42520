"""Model selection on validation accuracy, with an explicit rule for ties.

Small validation sets (CPF: 30 nodes per class) make exact ties in accuracy common. Two rules:

- ``first``: keep the earliest epoch that reached the best accuracy (Lightning's default);
- ``latest``: a tie also counts as an improvement, so the checkpoint moves to the later,
  longer-trained model and the patience counter restarts — the ``>=`` rule of GLNN's and
  VQGraph's training loops (``if score_val >= best_score_val``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import lightning.pytorch as pl
import torch
from lightning.pytorch.callbacks import EarlyStopping, ModelCheckpoint

from g2m.errors import ConfigError

TIE_RULES = ("first", "latest")
# accuracies are exact fractions k / |val|: any real difference is >= 1 / |val| >> this
TIE_TOLERANCE = 1e-7


class MovableCheckpoint(ModelCheckpoint):
    """A ``ModelCheckpoint`` that resumes in a run directory moved since it was saved.

    Lightning restores the best score and the kept paths only when the checkpoint folder is
    the one recorded; otherwise it keeps an old path and no score, so the next epoch would be
    taken as the best whatever its accuracy. The recorded paths are moved to this folder
    (same file names) instead.
    """

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        old = state_dict.get("dirpath")
        if old and self.dirpath and old != self.dirpath:

            def moved(path: str | None) -> str | None:
                return str(Path(self.dirpath) / Path(path).name) if path else path

            state_dict = {
                **state_dict,
                "dirpath": self.dirpath,
                "best_model_path": moved(state_dict.get("best_model_path")),
                "kth_best_model_path": moved(state_dict.get("kth_best_model_path")),
                "last_model_path": moved(state_dict.get("last_model_path")),
                "best_k_models": {
                    moved(k): v for k, v in (state_dict.get("best_k_models") or {}).items()
                },
            }
        super().load_state_dict(state_dict)


class LatestBestCheckpoint(MovableCheckpoint):
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
    checkpoint_cls = LatestBestCheckpoint if on_tie == "latest" else MovableCheckpoint
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
