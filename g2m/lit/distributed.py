"""Multi-device runs (``trainer.devices=N``): which stage is data-parallel, and who writes.

Only the **student stage** runs under Lightning DDP. Its step is a mini-batch of nodes,
so N ranks each take every N-th batch and the stage's throughput grows with N. The
teacher and codebook stages are full-graph: every rank would have to run the whole graph
to produce one gradient, so DDP would only replicate the work; they run on one device.

How the processes meet: Lightning's DDP launcher starts ranks 1..N-1 when the student
stage's ``fit`` begins, by re-running the same command (``python -m g2m.train ...``) with
the same run directory. By then rank 0 has written ``teacher.pt`` (and ``codebook.pt``),
so the new ranks load those artifacts instead of training, join the student stage, and
exit after it without writing anything: every file of the run is written by rank 0.

The student's step is small and host-bound (a few milliseconds of kernel launches for well
under a millisecond of GPU work), so DDP's per-step bookkeeping decides how well it scales.
The student stage therefore builds its :class:`~lightning.pytorch.strategies.DDPStrategy`
from ``trainer.ddp`` (:func:`student_trainer_kwargs`), by default with a static graph,
gradients as views of the all-reduce buckets, and no buffer broadcast in every forward:
:class:`SyncBuffersBeforeEvaluation` gives every rank rank 0's batch-norm statistics once
before each evaluation instead, so all ranks evaluate (and rank 0 saves) the same model.
"""

from __future__ import annotations

import os
from typing import Any

import lightning.pytorch as pl
import torch
from lightning.fabric.utilities.rank_zero import rank_zero_only
from lightning.pytorch.callbacks import Callback
from lightning.pytorch.strategies import DDPStrategy

from g2m.run.settings import device_count


def global_rank() -> int:
    """This process's rank (0 for a single-process run and for DDP's rank 0)."""
    return int(getattr(rank_zero_only, "rank", 0) or 0)


def is_secondary_rank() -> bool:
    """True in the processes that Lightning's DDP launcher started for ranks >= 1."""
    return global_rank() > 0


def single_device(trainer_kwargs: dict[str, Any]) -> dict[str, Any]:
    """The trainer arguments of a full-graph stage: the first requested device only."""
    kwargs = dict(trainer_kwargs)
    devices = kwargs.get("devices", 1)
    kwargs["devices"] = [devices[0]] if isinstance(devices, list | tuple) else 1
    kwargs.pop("strategy", None)
    kwargs.pop("ddp", None)
    return kwargs


def student_trainer_kwargs(trainer_kwargs: dict[str, Any]) -> dict[str, Any]:
    """The trainer arguments of the student stage: on several devices with no explicit
    ``strategy`` (or ``strategy: ddp``), a ``DDPStrategy`` with the ``ddp`` options."""
    kwargs = dict(trainer_kwargs)
    options = dict(kwargs.pop("ddp", None) or {})
    if device_count(kwargs) > 1 and kwargs.get("strategy", "auto") in ("auto", "ddp"):
        kwargs["strategy"] = DDPStrategy(**options)
    return kwargs


class SyncBuffersBeforeEvaluation(Callback):
    """Broadcast rank 0's module buffers (batch-norm running statistics) to every rank
    before validation. A no-op on one device; under DDP with ``broadcast_buffers=False``
    each rank's statistics otherwise follow only its own batches."""

    def on_validation_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if trainer.world_size < 2 or not torch.distributed.is_initialized():
            return
        for buffer in pl_module.buffers():
            torch.distributed.broadcast(buffer, src=0)


def pin_cuda_device(trainer_kwargs: dict[str, Any]) -> None:
    """In a DDP child, make its own GPU the current one before any data is put on "cuda"."""
    local_rank = os.environ.get("LOCAL_RANK")
    if local_rank is None or not torch.cuda.is_available():
        return
    devices = trainer_kwargs.get("devices", 1)
    index = int(local_rank)
    if isinstance(devices, list | tuple):
        index = int(devices[index])
    if trainer_kwargs.get("accelerator") in ("gpu", "cuda", "auto"):
        torch.cuda.set_device(index)
