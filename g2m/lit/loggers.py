"""The run's Lightning loggers: one per stage for file logs, one W&B run for the whole run.

- File loggers (CSV, TensorBoard) get one directory per stage (``logs/teacher/``,
  ``logs/student/``, ...), so that each stage's table has its own columns instead of one
  sparse table across stages, and each stage's epochs start at 0 on their own axis.
- The CSV logger appends (:class:`AppendingCSVLogger`): a resumed stage adds its rows after
  those logged before the interruption instead of deleting them, as Lightning's own does.
- W&B keeps one run for every stage; each stage's metrics are plotted against its own
  ``<stage>/epoch`` (:class:`StageEpochAxis`), and :func:`g2m.lit.fit.report_stage` puts the
  selected (best-validation) values in the run's summary.
"""

from __future__ import annotations

import csv
import os
from collections.abc import Callable
from typing import Any

import lightning.pytorch as pl
from lightning.pytorch.callbacks import Callback
from lightning.pytorch.loggers import CSVLogger, TensorBoardLogger, WandbLogger
from lightning.pytorch.loggers.csv_logs import ExperimentWriter


class _AppendingWriter(ExperimentWriter):
    """Lightning's CSV writer, except that an existing ``metrics.csv`` is continued."""

    def _check_log_dir_exists(self) -> None:
        if os.path.isfile(self.metrics_file_path):
            with open(self.metrics_file_path, newline="") as handle:
                self.metrics_keys = list(csv.DictReader(handle).fieldnames or [])


class AppendingCSVLogger(CSVLogger):
    """``logger=csv``: ``<save_dir>/<name>/<version>/metrics.csv``, appended across resumes."""

    def __init__(self, save_dir: str, name: str = "logs", version: str = "", **kwargs: Any):
        super().__init__(save_dir, name=name, version=version, **kwargs)

    @property
    def experiment(self) -> ExperimentWriter:
        if self._experiment is None:
            os.makedirs(self.root_dir, exist_ok=True)
            self._experiment = _AppendingWriter(log_dir=self.log_dir)
        return self._experiment


class RunLoggers:
    """Builds and hands out the run's loggers (``factory(save_dir=..., [version=...])``)."""

    def __init__(self, factory: Callable[..., Any] | None, save_dir: str, hyperparams: dict):
        self.factory, self.save_dir, self.hyperparams = factory, save_dir, hyperparams
        self.shared: Any = None
        self.made: list[Any] = []

    def for_stage(self, stage: str) -> Any:
        """The logger a stage's Trainer gets (False: none)."""
        if self.factory is None:
            return False
        if self.shared is not None:
            return self.shared
        # W&B's ~35 console lines per offline run; WANDB_SILENT=false brings them back
        os.environ.setdefault("WANDB_SILENT", "true")
        logger = self.factory(save_dir=self.save_dir)
        if isinstance(logger, WandbLogger):
            self.shared = logger
        elif isinstance(logger, CSVLogger | TensorBoardLogger):
            logger = self.factory(save_dir=self.save_dir, version=stage)
        logger.log_hyperparams(self.hyperparams)
        self.made.append(logger)
        return logger

    def finish(self) -> None:
        """Flush every logger; end the W&B run so that the next run of a sweep starts its own."""
        for logger in self.made:
            logger.finalize("success")
            if isinstance(logger, WandbLogger):
                logger.experiment.finish()


class StageEpochAxis(Callback):
    """Log ``<stage>/epoch`` with every epoch's metrics and make it the x-axis of the stage's
    W&B charts (``define_metric``): the global step runs on across stages, the epoch restarts."""

    def __init__(self, stage: str):
        self.stage = stage

    def on_fit_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        for logger in trainer.loggers:
            if isinstance(logger, WandbLogger):
                logger.experiment.define_metric(f"{self.stage}/epoch")
                logger.experiment.define_metric(
                    f"{self.stage}/*", step_metric=f"{self.stage}/epoch"
                )

    def on_validation_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if trainer.sanity_checking:
            return
        pl_module.log(f"{self.stage}/epoch", float(trainer.current_epoch), on_epoch=True)
