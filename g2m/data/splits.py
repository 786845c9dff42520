"""Node splits: the CPF protocol, fixed PyG masks, and GLNN's inductive hold-out.

CPF protocol (Yang et al., WWW 2021; used by GLNN, NOSMOG, VQGraph): for every class draw
``train_per_class`` training and ``val_per_class`` validation nodes at random; every other
node is a test node. The draw depends on the seed only, so each seed has its own split.

Random protocol (Shchur et al., 2018; FF-G2M's Amazon protocol): ``train_per_class``
training nodes per class, then ``val_size`` validation and ``test_size`` test nodes drawn
uniformly from the rest; nodes in no part stay in the graph, unlabelled. Redrawn per seed.

Inductive setting (GLNN, Zhang et al., ICLR 2022, Sec. 5): a fraction (20%) of the test
nodes is held out *together with every edge touching them*. Teacher and student train on
the observed subgraph; the held-out nodes are only seen at test time (the teacher may use
the full graph then; the student uses features only). Reported: ``tran`` (the observed
test nodes), ``ind`` (the held-out ones) and ``prod = 0.8 * tran + 0.2 * ind``.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor
from torch_geometric.data import Data

from g2m.errors import ConfigError, DataError


@dataclass(frozen=True)
class NodeSplit:
    """Global node ids of each part of a split (``test_ind`` empty when transductive)."""

    train: Tensor
    val: Tensor
    test: Tensor
    test_ind: Tensor
    num_nodes: int

    @property
    def inductive(self) -> bool:
        return self.test_ind.numel() > 0

    @property
    def observed(self) -> Tensor:
        """Sorted ids of the nodes (and, by implication, edges) seen during training.

        Every node except the held-out ones — including nodes in no split part (fixed splits
        such as geom-gcn's leave some nodes out; they stay in the graph, unlabelled).
        """
        keep = torch.ones(self.num_nodes, dtype=torch.bool)
        keep[self.test_ind.cpu()] = False
        return keep.nonzero().view(-1)

    def to_dict(self) -> dict:
        return {
            "train": self.train,
            "val": self.val,
            "test": self.test,
            "test_ind": self.test_ind,
            "num_nodes": self.num_nodes,
        }

    @classmethod
    def from_dict(cls, state: dict) -> NodeSplit:
        return cls(**state)

    def same_as(self, other: NodeSplit) -> bool:
        parts = ("train", "val", "test", "test_ind")
        return self.num_nodes == other.num_nodes and all(
            torch.equal(getattr(self, p), getattr(other, p)) for p in parts
        )


def cpf_split(
    labels: Tensor, train_per_class: int, val_per_class: int, seed: int, min_val: int = 1
) -> tuple[Tensor, Tensor, Tensor]:
    """Per-class random train/val draws; the rest is test. Returns sorted id tensors."""
    if train_per_class < 1 or val_per_class < min_val:
        raise ConfigError(
            f"train_per_class must be >= 1 and val_per_class >= {min_val}, got "
            f"{train_per_class}, {val_per_class}."
        )
    gen = torch.Generator().manual_seed(seed)
    labels = labels.cpu()
    train, val = [], []
    for c in labels.unique().tolist():
        members = (labels == c).nonzero().view(-1)
        need = train_per_class + val_per_class
        if members.numel() < need:
            raise DataError(
                f"Cannot draw the split: class {c} has {members.numel()} nodes but "
                f"{train_per_class} train + {val_per_class} val per class need {need}. "
                f"Lower dataset.train_per_class / dataset.val_per_class."
            )
        perm = members[torch.randperm(members.numel(), generator=gen)]
        train.append(perm[:train_per_class])
        val.append(perm[train_per_class:need])
    train_idx, val_idx = torch.cat(train).sort().values, torch.cat(val).sort().values
    is_test = torch.ones(labels.numel(), dtype=torch.bool)
    is_test[train_idx] = False
    is_test[val_idx] = False
    return train_idx, val_idx, is_test.nonzero().view(-1)


def random_split(
    labels: Tensor, train_per_class: int, val_size: int, test_size: int, seed: int
) -> tuple[Tensor, Tensor, Tensor]:
    """Per-class training draws, then uniform validation and test draws from the rest."""
    if val_size < 1 or test_size < 1:
        raise ConfigError(f"val_size and test_size must be >= 1, got {val_size}, {test_size}.")
    train, _, rest = cpf_split(labels, train_per_class, 0, seed, min_val=0)
    if rest.numel() < val_size + test_size:
        raise DataError(
            f"Cannot draw the split: {rest.numel()} nodes remain after the training draw but "
            f"val_size + test_size = {val_size + test_size}. Lower dataset.val_size/test_size."
        )
    gen = torch.Generator().manual_seed(seed + 1)
    rest = rest[torch.randperm(rest.numel(), generator=gen)]
    val = rest[:val_size].sort().values
    test = rest[val_size : val_size + test_size].sort().values
    return train, val, test


def mask_split(data: Data, seed: int) -> tuple[Tensor, Tensor, Tensor]:
    """Fixed PyG masks; with ``[N, K]`` masks (geom-gcn) the seed picks split ``seed % K``."""
    masks = []
    for name in ("train_mask", "val_mask", "test_mask"):
        mask = getattr(data, name)
        if mask.dim() == 2:
            mask = mask[:, seed % mask.size(1)]
        masks.append(mask.nonzero().view(-1))
    return masks[0], masks[1], masks[2]


def hold_out(test: Tensor, fraction: float, seed: int) -> tuple[Tensor, Tensor]:
    """Split test ids into (observed test, held-out test) as GLNN's inductive setting does."""
    if not 0.0 <= fraction < 1.0:
        raise ConfigError(f"held-out fraction must be in [0, 1), got {fraction}.")
    gen = torch.Generator().manual_seed(seed)
    perm = test[torch.randperm(test.numel(), generator=gen)]
    num_ind = int(fraction * test.numel())
    return perm[num_ind:].sort().values, perm[:num_ind].sort().values


def make_split(
    data: Data,
    protocol: str,
    seed: int,
    held_out_fraction: float = 0.0,
    train_per_class: int = 20,
    val_per_class: int = 30,
    val_size: int = 500,
    test_size: int = 1000,
) -> NodeSplit:
    """The split of ``data`` under ``protocol`` (``cpf``, ``random``, ``public``, ``geom-gcn``)."""
    if protocol == "cpf":
        train, val, test = cpf_split(data.y, train_per_class, val_per_class, seed)
    elif protocol == "random":
        train, val, test = random_split(data.y, train_per_class, val_size, test_size, seed)
    elif protocol in ("public", "geom-gcn"):
        train, val, test = mask_split(data, seed)
    else:
        raise ConfigError(
            f"Unknown split protocol '{protocol}'; use cpf, random, public or geom-gcn."
        )
    test, test_ind = hold_out(test, held_out_fraction, seed)
    return NodeSplit(train, val, test, test_ind, data.num_nodes)


def observed_subgraph(data: Data, split: NodeSplit) -> Data:
    """The graph induced by the observed nodes, relabelled ``0..|observed|-1``.

    Every edge with a held-out endpoint is removed. In the transductive setting this is
    ``data`` itself (same numbering).
    """
    if not split.inductive:
        return data
    return data.subgraph(split.observed.to(data.edge_index.device))


def to_local(global_ids: Tensor, observed: Tensor, num_nodes: int) -> Tensor:
    """Map global node ids to positions in ``observed`` (all ids must be observed)."""
    lookup = torch.full((num_nodes,), -1, dtype=torch.long, device=observed.device)
    lookup[observed] = torch.arange(observed.numel(), device=observed.device)
    local = lookup[global_ids.to(observed.device)]
    if (local < 0).any():
        raise ValueError("some node ids are not part of the observed graph")
    return local
