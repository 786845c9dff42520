"""NOSMOG's position features as an extra stage (``positions``, ``configs/positions/``).

The stage computes every node's position (:mod:`g2m.models.positions`) on the *observed*
graph, so no held-out node or edge shapes them; a held-out node (inductive setting) then
takes the mean of its observed neighbours' positions, as NOSMOG does at test time. The
artifact (``positions.pt``, stored and reused like the teacher's) holds the ``[N, P]``
table; :meth:`PositionStage.hand_over` gives it to the student as ``P`` more input columns,
and the shipped ``student.pt`` says so (its ``input`` block's ``positions`` entry), so that
whoever serves the student supplies them (``g2m.serve.predict --positions``; new nodes:
:mod:`g2m.serve.positions`).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import torch
from torch import Tensor, nn

from g2m.data.splits import NodeSplit, observed_subgraph
from g2m.errors import ConfigError, check_integer
from g2m.models.positions import METHODS, deepwalk, fill_from_neighbours, laplacian_eigenvectors
from g2m.run.artifacts import NodeTableArtifact
from g2m.run.extra import DistillationTargets, ExtraStage, StageContext

POSITION_ARTIFACT_VERSION = 1
# the walks' generator is seeded with the run's seed plus this (its own stream)
POSITION_SEED_OFFSET = 3571
NEW_NODES = (
    "a node the student was not trained with takes the mean of the positions of its "
    "neighbours in the training graph (g2m.serve.positions); it needs those edges"
)


@dataclass
class PositionArtifact(NodeTableArtifact):
    """``positions [N, P]`` (held-out rows: the mean of their observed neighbours'), the
    method that made them, and what they were made for (checked on reuse)."""

    kind: ClassVar[str] = "positions"
    version: ClassVar[int] = POSITION_ARTIFACT_VERSION
    tensors: ClassVar[tuple[str, ...]] = ("positions",)

    positions: Tensor
    method: str
    split: NodeSplit
    dataset: str
    num_features: int
    metrics: dict[str, Any] = field(default_factory=dict)
    timings: dict[str, Any] = field(default_factory=dict)
    provenance: dict[str, Any] = field(default_factory=dict)


class PositionStage(ExtraStage):
    """Position features for the student's input.

    Args:
        method: ``deepwalk`` (random walks + skip-gram) or ``laplacian`` (eigenvectors).
        channels: P, the width of a node's position.
        walk_length, walks_per_node, context, negatives, epochs, lr, batch_size: DeepWalk's
            settings (:func:`g2m.models.positions.deepwalk`); ignored by ``laplacian``.
        artifact: a stored ``positions.pt`` to reuse instead of computing it.
    """

    name = "positions"
    teacher_gnn = "none"

    def __init__(
        self,
        method: str = "deepwalk",
        channels: int = 64,
        walk_length: int = 50,
        walks_per_node: int = 5,
        context: int = 5,
        negatives: int = 5,
        epochs: int = 1,
        lr: float = 0.01,
        batch_size: int = 32,
        artifact: str | None = None,
    ):
        if method not in METHODS:
            raise ConfigError(f"positions.method={method!r}: expected one of {list(METHODS)}.")
        counts = dict(channels=channels, walk_length=walk_length, walks_per_node=walks_per_node,
                      context=context, negatives=negatives, epochs=epochs,
                      batch_size=batch_size)  # fmt: skip
        for key, value in counts.items():
            check_integer(f"positions.{key}", value, 1)
        if context >= walk_length:
            raise ConfigError(
                f"positions.context={context} must be smaller than positions.walk_length="
                f"{walk_length} (each node is paired with the next `context` nodes of its walk)."
            )
        if not float(lr) > 0:
            raise ConfigError(f"positions.lr={lr!r}: expected a number > 0.")
        self.method, self.input_channels = method, channels
        self.walks = dict(walk_length=walk_length, walks_per_node=walks_per_node,
                          context=context, negatives=negatives, epochs=epochs, lr=float(lr),
                          batch_size=batch_size)  # fmt: skip
        self.artifact = artifact

    def build(
        self,
        num_features: int,
        num_classes: int,
        teacher_model: Callable[..., nn.Module],
        self_loops: bool,
    ) -> None:
        """Nothing to build: the positions are computed from the graph alone."""

    def train(self, context: StageContext) -> PositionArtifact:
        graph, split = context.graph, context.split
        started = time.perf_counter()
        observed = observed_subgraph(graph, split)  # local ids 0..N_obs-1
        local = self.positions_of(observed.edge_index, observed.num_nodes, context.seed)
        positions = torch.zeros(split.num_nodes, self.input_channels)
        positions[split.observed] = local.cpu()
        known = torch.zeros(split.num_nodes, dtype=torch.bool)
        known[split.observed] = True
        positions = fill_from_neighbours(positions, known, graph.edge_index.cpu())
        seconds = round(time.perf_counter() - started, 2)
        metrics = {"method": self.method, "channels": self.input_channels}
        return PositionArtifact(positions, self.method, split, context.dataset,
                                graph.num_features, metrics, {"seconds": seconds})  # fmt: skip

    def positions_of(self, edge_index: Tensor, num_nodes: int, seed: int) -> Tensor:
        """``[num_nodes, P]`` positions of a graph, seeded by the run's ``seed``."""
        device = edge_index.device
        generator = torch.Generator(device=device).manual_seed(seed + POSITION_SEED_OFFSET)
        if self.method == "laplacian":
            with torch.random.fork_rng(devices=[]):  # PyG draws the eigenvectors' signs
                torch.manual_seed(seed + POSITION_SEED_OFFSET)
                return laplacian_eigenvectors(edge_index, num_nodes, self.input_channels)
        return deepwalk(edge_index, num_nodes, self.input_channels, generator=generator,
                        **self.walks)  # fmt: skip

    def load(self, path: Path) -> PositionArtifact:
        return PositionArtifact.load(path)

    def hand_over(
        self,
        artifact: PositionArtifact,
        targets: DistillationTargets,
        objective: nn.Module,
        student: nn.Module,
    ) -> DistillationTargets:
        """The positions become the student's input columns after the node features."""
        spec = {"channels": int(artifact.positions.size(1)), "method": artifact.method,
                "new_nodes": NEW_NODES}  # fmt: skip
        return targets.replace(inputs=artifact.positions, input_spec={"positions": spec})

    def describe(self, metrics: dict[str, Any]) -> str:
        return f"{metrics['method']}, {metrics['channels']} channels"
