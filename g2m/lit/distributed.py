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
"""

from __future__ import annotations

import os
from typing import Any

import torch
from lightning.fabric.utilities.rank_zero import rank_zero_only


def global_rank() -> int:
    """This process's rank (0 for a single-process run and for DDP's rank 0)."""
    return int(getattr(rank_zero_only, "rank", 0) or 0)


def is_secondary_rank() -> bool:
    """True in the processes that Lightning's DDP launcher started for ranks >= 1."""
    return global_rank() > 0


def device_count(trainer_kwargs: dict[str, Any]) -> int:
    """How many devices the trainer config asks for (a list counts its entries)."""
    devices = trainer_kwargs.get("devices", 1)
    if isinstance(devices, list | tuple):
        return len(devices)
    if isinstance(devices, int):
        return devices
    return 1  # "auto" and friends are resolved by Lightning; single-device stages pin 1


def single_device(trainer_kwargs: dict[str, Any]) -> dict[str, Any]:
    """The trainer arguments of a full-graph stage: the first requested device only."""
    kwargs = dict(trainer_kwargs)
    devices = kwargs.get("devices", 1)
    kwargs["devices"] = [devices[0]] if isinstance(devices, list | tuple) else 1
    kwargs.pop("strategy", None)
    return kwargs


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
