"""Loaders for graph data that already lives on the model's device.

Node data (features, labels, teacher targets, graphs) is moved to the device once; the
loaders only yield node ids. Training batches (:class:`NodeBatches`) are cut on the device
from one permutation per epoch, so a step copies nothing from the host (a per-step copy of
ids from pageable host memory would stall the CPU until the GPU drained its queue).
Evaluation chunks are few and are moved by Lightning.
"""

from __future__ import annotations

import torch
from torch import Tensor
from torch.utils.data import DataLoader

from g2m.errors import ConfigError


def full_batch_loader() -> DataLoader:
    """One step per epoch for full-graph training (the step ignores its batch)."""
    return DataLoader([torch.zeros(1)], batch_size=None)


class FullGraphStage:
    """Mixin for full-graph LightningModules: one step per epoch in every phase, Adam over
    all parameters with the module's ``lr`` and ``weight_decay``."""

    lr: float
    weight_decay: float

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return torch.optim.Adam(self.parameters(), lr=self.lr, weight_decay=self.weight_decay)

    def train_dataloader(self) -> DataLoader:
        return full_batch_loader()

    def val_dataloader(self) -> DataLoader:
        return full_batch_loader()

    def test_dataloader(self) -> DataLoader:
        return full_batch_loader()


class NodeBatches:
    """Shuffled mini-batches of ``nodes`` for one rank, made on ``nodes``' device.

    Every epoch draws one permutation with ``generator`` (a CPU generator, the same on every
    rank, so its state is checkpointed and a resumed epoch draws the same order), cuts it
    into ``ceil(n / batch_size)`` batches and gives rank ``r`` of ``world_size`` the batches
    ``r, r + world_size, ...``. Ranks get equally many batches (the last ones wrap around
    to the first), as DDP needs every rank to take the same number of steps.
    """

    def __init__(
        self,
        nodes: Tensor,
        batch_size: int,
        generator: torch.Generator,
        rank: int = 0,
        world_size: int = 1,
    ):
        if batch_size < 1:
            raise ConfigError(f"batch_size must be >= 1, got {batch_size}.")
        self.nodes, self.batch_size, self.generator = nodes, batch_size, generator
        self.rank, self.world_size = rank, world_size
        self.num_batches = -(-nodes.numel() // batch_size)

    def __len__(self) -> int:
        return -(-self.num_batches // self.world_size)

    def __iter__(self):
        order = torch.randperm(self.nodes.numel(), generator=self.generator)
        batches = self.nodes[order.to(self.nodes.device)].split(self.batch_size)
        for step in range(len(self)):
            yield batches[(step * self.world_size + self.rank) % self.num_batches]


def labelled_chunks(parts: dict[str, Tensor], batch_size: int) -> DataLoader:
    """``(part_name, node_ids)`` items over several evaluation parts, in chunks."""
    items = [
        (name, chunk)
        for name, ids in parts.items()
        if ids.numel() > 0
        for chunk in ids.cpu().split(batch_size)
    ]
    return DataLoader(items, batch_size=None)
