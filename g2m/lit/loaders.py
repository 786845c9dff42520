"""Loaders for graph data that already lives on the model's device.

Node data (features, labels, teacher targets, graphs) is moved to the device once; the
loaders only yield node ids, which Lightning moves per step. This keeps full-graph and
mini-batch training on the GPU free of host-to-device copies of features.
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


def node_loader(
    nodes: Tensor, batch_size: int, generator: torch.Generator | None = None
) -> DataLoader:
    """Batches of node ids from ``nodes``, reshuffled every epoch by ``generator`` if given."""
    if batch_size < 1:
        raise ConfigError(f"batch_size must be >= 1, got {batch_size}.")
    shuffle = generator is not None
    return DataLoader(nodes.cpu(), batch_size=batch_size, shuffle=shuffle, generator=generator)


def labelled_chunks(parts: dict[str, Tensor], batch_size: int) -> DataLoader:
    """``(part_name, node_ids)`` items over several evaluation parts, in chunks."""
    items = [
        (name, chunk)
        for name, ids in parts.items()
        if ids.numel() > 0
        for chunk in ids.cpu().split(batch_size)
    ]
    return DataLoader(items, batch_size=None)
