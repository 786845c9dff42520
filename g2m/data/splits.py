"""Node splits as their own choice (``split=cpf|random|ratio|masks|public|geom-gcn|ogb``),
applicable to any graph, and GLNN's inductive hold-out on top of each.

Each ``split`` config is a ``_target_`` node naming one :class:`SplitProtocol`; its
:meth:`~SplitProtocol.draw` gives train, validation and test ids for a seed. Unlabelled
nodes (``y = -1``) are never drawn. :func:`make_split` then holds out part of the test
nodes (the setting) and checks that every class has training nodes and that no part is
empty.

- **CPF** (Yang et al., WWW 2021; used by GLNN, NOSMOG, VQGraph): for every class draw
  ``train_per_class`` training and ``val_per_class`` validation nodes at random; every
  other labelled node is a test node. Redrawn per seed. (CPF also keeps only the largest
  connected component: a property of the graph, ``dataset.largest_component``.)
- **Random** (Shchur et al., 2018; FF-G2M's Amazon protocol): ``train_per_class`` training
  nodes per class, then ``val_size`` validation and ``test_size`` test nodes drawn uniformly
  from the rest; nodes in no part stay in the graph, unlabelled. Redrawn per seed.
- **Ratio**: each class's labelled nodes shuffled and cut into ``train``/``val``/``test``
  fractions (e.g. 60/20/20), stratified so that every class is in every part. Per seed.
- **Masks** (``masks``, and its names ``public``, ``geom-gcn``, ``ogb``): the dataset's own
  ``train_mask``/``val_mask``/``test_mask``; with ``[N, K]`` masks (geom-gcn's ten splits)
  seed ``s`` uses column ``s % K``.

Inductive setting (GLNN, Zhang et al., ICLR 2022, Sec. 5): a fraction (20%) of the test
nodes is held out *together with every edge touching them*. Teacher and student train on
the observed subgraph; the held-out nodes are only seen at test time (the teacher may use
the full graph then; the student uses features only). Reported: ``tran`` (the observed
test nodes), ``ind`` (the held-out ones) and ``prod = 0.8 * tran + 0.2 * ind``.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch
from torch import Tensor

from g2m.errors import ConfigError, DataError

if TYPE_CHECKING:
    from torch_geometric.data import Data

log = logging.getLogger("g2m")


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


class SplitProtocol:
    """Base class: ``draw(graph, seed)`` gives sorted ``(train, val, test)`` node ids.

    Args:
        name: the protocol's name in metrics and the summary (``cpf``, ``public``, ...).
    """

    #: a published fixed split may leave a class without training nodes (geom-gcn's splits
    #: of Texas and Cornell miss their one-node class): then warn instead of refusing
    allow_untrained_classes: bool = False

    def __init__(self, name: str):
        self.name = str(name)

    def draw(self, graph: Data, seed: int) -> tuple[Tensor, Tensor, Tensor]:
        raise NotImplementedError


def _labelled_classes(labels: Tensor) -> list[int]:
    return labels[labels >= 0].unique().tolist()


def cpf_split(
    labels: Tensor, train_per_class: int, val_per_class: int, seed: int, min_val: int = 1
) -> tuple[Tensor, Tensor, Tensor]:
    """Per-class random train/val draws; the other labelled nodes are test. Sorted ids."""
    if train_per_class < 1 or val_per_class < min_val:
        raise ConfigError(
            f"split.train_per_class must be >= 1 and split.val_per_class >= {min_val}, got "
            f"{train_per_class}, {val_per_class}."
        )
    gen = torch.Generator().manual_seed(seed)
    labels = labels.cpu()
    train, val = [], []
    for c in _labelled_classes(labels):
        members = (labels == c).nonzero().view(-1)
        need = train_per_class + val_per_class
        if members.numel() < need:
            raise DataError(
                f"Cannot draw the split: class {c} has {members.numel()} nodes but "
                f"{train_per_class} train + {val_per_class} val per class need {need}. "
                f"Lower split.train_per_class / split.val_per_class."
            )
        perm = members[torch.randperm(members.numel(), generator=gen)]
        train.append(perm[:train_per_class])
        val.append(perm[train_per_class:need])
    train_idx, val_idx = torch.cat(train).sort().values, torch.cat(val).sort().values
    is_test = labels >= 0
    is_test[train_idx] = False
    is_test[val_idx] = False
    return train_idx, val_idx, is_test.nonzero().view(-1)


def random_split(
    labels: Tensor, train_per_class: int, val_size: int, test_size: int, seed: int
) -> tuple[Tensor, Tensor, Tensor]:
    """Per-class training draws, then uniform validation and test draws from the rest."""
    if val_size < 1 or test_size < 1:
        raise ConfigError(
            f"split.val_size and split.test_size must be >= 1, got {val_size}, {test_size}."
        )
    train, _, rest = cpf_split(labels, train_per_class, 0, seed, min_val=0)
    if rest.numel() < val_size + test_size:
        raise DataError(
            f"Cannot draw the split: {rest.numel()} nodes remain after the training draw but "
            f"val_size + test_size = {val_size + test_size}. Lower split.val_size/test_size."
        )
    gen = torch.Generator().manual_seed(seed + 1)
    rest = rest[torch.randperm(rest.numel(), generator=gen)]
    val = rest[:val_size].sort().values
    test = rest[val_size : val_size + test_size].sort().values
    return train, val, test


class CPFSplit(SplitProtocol):
    """``split=cpf``: ``train_per_class`` + ``val_per_class`` per class, the rest test."""

    def __init__(self, name: str, train_per_class: int, val_per_class: int):
        super().__init__(name)
        self.train_per_class, self.val_per_class = int(train_per_class), int(val_per_class)
        if self.train_per_class < 1 or self.val_per_class < 1:
            raise ConfigError(
                "split.train_per_class and split.val_per_class must be >= 1, got "
                f"{train_per_class}, {val_per_class}."
            )

    def draw(self, graph: Data, seed: int) -> tuple[Tensor, Tensor, Tensor]:
        return cpf_split(graph.y, self.train_per_class, self.val_per_class, seed)


class RandomSplit(SplitProtocol):
    """``split=random``: ``train_per_class`` per class, then ``val_size``/``test_size`` nodes."""

    def __init__(self, name: str, train_per_class: int, val_size: int, test_size: int):
        super().__init__(name)
        self.train_per_class = int(train_per_class)
        self.val_size, self.test_size = int(val_size), int(test_size)
        if self.train_per_class < 1 or self.val_size < 1 or self.test_size < 1:
            raise ConfigError(
                "split.train_per_class, split.val_size and split.test_size must be >= 1, got "
                f"{train_per_class}, {val_size}, {test_size}."
            )

    def draw(self, graph: Data, seed: int) -> tuple[Tensor, Tensor, Tensor]:
        return random_split(graph.y, self.train_per_class, self.val_size, self.test_size, seed)


class RatioSplit(SplitProtocol):
    """``split=ratio``: fractions ``train``/``val``/``test`` of each class (stratified).

    Each class's labelled nodes are shuffled; the first ``round(train * n)`` (at least one)
    train, the next ``round(val * n)`` validate, the next ``round(test * n)`` test. Fractions
    summing to less than 1 leave the remaining nodes out of every part.
    """

    def __init__(self, name: str, train: float, val: float, test: float):
        super().__init__(name)
        self.fractions = (float(train), float(val), float(test))
        if min(self.fractions) <= 0 or sum(self.fractions) > 1 + 1e-9:
            raise ConfigError(
                f"split.train/val/test must be > 0 and sum to at most 1, got {self.fractions}."
            )

    def draw(self, graph: Data, seed: int) -> tuple[Tensor, Tensor, Tensor]:
        gen = torch.Generator().manual_seed(seed)
        labels = graph.y.cpu()
        parts: tuple[list[Tensor], ...] = ([], [], [])
        for c in _labelled_classes(labels):
            members = (labels == c).nonzero().view(-1)
            members = members[torch.randperm(members.numel(), generator=gen)]
            n = members.numel()
            sizes = [max(1, round(self.fractions[0] * n))]
            sizes += [round(f * n) for f in self.fractions[1:]]
            bounds = torch.tensor([0, *sizes]).cumsum(0).clamp(max=n).tolist()
            for part, lo, hi in zip(parts, bounds[:-1], bounds[1:], strict=True):
                part.append(members[lo:hi])
        train, val, test = (torch.cat(p).sort().values for p in parts)
        return train, val, test


class MaskSplit(SplitProtocol):
    """``split=masks`` (also ``public``, ``geom-gcn``, ``ogb``): the dataset's own masks.

    Masks of shape ``[N, K]`` hold K splits; seed ``s`` uses column ``s % K``.

    Args:
        name: the protocol's name in metrics.
        allow_untrained_classes: accept masks that leave a labelled class without training
            nodes (with a warning), as some published splits do; false refuses them.
    """

    def __init__(self, name: str, allow_untrained_classes: bool):
        super().__init__(name)
        self.allow_untrained_classes = bool(allow_untrained_classes)

    def draw(self, graph: Data, seed: int) -> tuple[Tensor, Tensor, Tensor]:
        ids = []
        for key in ("train_mask", "val_mask", "test_mask"):
            mask = getattr(graph, key, None)
            if mask is None:
                raise DataError(
                    f"split={self.name} uses the dataset's own train/val/test masks, and this "
                    f"graph has no {key}. Choose split=cpf, random or ratio, or give the graph "
                    "its masks."
                )
            if mask.dim() == 2:
                mask = mask[:, seed % mask.size(1)]
            ids.append((mask.cpu() & (graph.y.cpu() >= 0)).nonzero().view(-1))
        if any(
            torch.isin(a, b).any()
            for a, b in ((ids[0], ids[1]), (ids[0], ids[2]), (ids[1], ids[2]))
        ):
            raise DataError(
                f"split={self.name}: the dataset's masks overlap; a node may be in one part only."
            )
        return ids[0], ids[1], ids[2]


MIN_TEST_NODES = 5  # each test part of the inductive setting, at least (Cornell: 7 held out)


def hold_out(test: Tensor, fraction: float, seed: int) -> tuple[Tensor, Tensor]:
    """Split test ids into (observed test, held-out test) as GLNN's inductive setting does."""
    if not 0.0 <= fraction < 1.0:
        raise ConfigError(f"setting.held_out_fraction must be in [0, 1), got {fraction}.")
    gen = torch.Generator().manual_seed(seed)
    perm = test[torch.randperm(test.numel(), generator=gen)]
    num_ind = int(fraction * test.numel())
    if fraction > 0 and min(num_ind, test.numel() - num_ind) < MIN_TEST_NODES:
        raise DataError(
            f"setting.held_out_fraction={fraction} splits the {test.numel()} test nodes into "
            f"{test.numel() - num_ind} observed and {num_ind} held-out: each part needs at least "
            f"{MIN_TEST_NODES} nodes for its accuracy to mean something (GLNN holds out 0.2)."
        )
    return perm[num_ind:].sort().values, perm[:num_ind].sort().values


def check_parts(
    graph: Data, parts: tuple[Tensor, Tensor, Tensor], protocol: SplitProtocol, seed: int
) -> None:
    """Refuse an empty part, or a labelled class without training nodes (warn instead where
    the protocol allows it)."""
    for part, ids in zip(("training", "validation", "test"), parts, strict=True):
        if ids.numel() == 0:
            raise DataError(f"split={protocol.name} leaves the {part} part empty.")
    labels = graph.y.cpu()
    missing = sorted(set(_labelled_classes(labels)) - set(labels[parts[0]].tolist()))
    if not missing:
        return
    message = (
        f"split={protocol.name} (seed {seed}) leaves class(es) {missing} without training "
        "nodes: the teacher and the student can never predict them"
    )
    if protocol.allow_untrained_classes:
        log.warning("%s (a published split; kept as it is).", message)
        return
    raise DataError(
        f"{message}. Use a split that draws per class (cpf, random, ratio), or relabel."
    )


def make_split(
    data: Data, protocol: SplitProtocol, seed: int, held_out_fraction: float = 0.0
) -> NodeSplit:
    """The split of ``data`` drawn by ``protocol`` for ``seed``, with the held-out part."""
    train, val, test = protocol.draw(data, seed)
    check_parts(data, (train, val, test), protocol, seed)
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
