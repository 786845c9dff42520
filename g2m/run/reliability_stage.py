r"""KRD's knowledge reliability as an extra stage (``reliability``, ``configs/reliability/``).

From the trained teacher (its weights are in the teacher artifact) and the observed graph,
one eval-mode pass on the features and one on noisy features give every observed node's
:math:`\rho_i = |H(p^t_i(X + \varepsilon)) - H(p^t_i(X))| / \max_j |\cdot|_j` with
:math:`\varepsilon \sim \mathcal{N}(0, \sigma^2)` (Wu et al., ICML 2023, Sec. 4.1; σ = 1 in
the released code); :mod:`g2m.losses.krd` turns it into the probability of learning from a
neighbour. Held-out nodes get NaN. The artifact (``reliability.pt``) is stored and reused
like the teacher's.
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
from g2m.errors import ArtifactError, ConfigError
from g2m.run.artifacts import NodeTableArtifact
from g2m.run.extra import DistillationTargets, ExtraStage, StageContext

RELIABILITY_ARTIFACT_VERSION = 1
RELIABILITY_SEED_OFFSET = 7727  # the noise's generator: the run's seed plus this


def entropy(logits: Tensor) -> Tensor:
    """``[N]`` entropy (nats) of ``softmax`` of ``[N, C]`` logits."""
    log_p = torch.log_softmax(logits.float(), dim=-1)
    return -(log_p.exp() * log_p).sum(-1)


def entropy_change(clean: Tensor, noisy: Tensor) -> Tensor:
    """``[N]`` :math:`\\rho`: the absolute entropy change, divided by its maximum (0 if none)."""
    change = (entropy(noisy) - entropy(clean)).abs()
    top = change.max()
    return change / top if float(top) > 0 else torch.zeros_like(change)


@dataclass
class ReliabilityArtifact(NodeTableArtifact):
    """``reliability [N]`` (:math:`\\rho`, NaN for held-out nodes) and what it was made for."""

    kind: ClassVar[str] = "reliability"
    version: ClassVar[int] = RELIABILITY_ARTIFACT_VERSION
    tensors: ClassVar[tuple[str, ...]] = ("reliability",)

    reliability: Tensor
    split: NodeSplit
    dataset: str
    num_features: int
    metrics: dict[str, Any] = field(default_factory=dict)
    timings: dict[str, Any] = field(default_factory=dict)
    provenance: dict[str, Any] = field(default_factory=dict)


class ReliabilityStage(ExtraStage):
    """The teacher's knowledge reliability per node.

    Args:
        noise: σ > 0, the standard deviation of the Gaussian feature noise.
        artifact: a stored ``reliability.pt`` to reuse instead of computing it.
    """

    name = "reliability"
    teacher_gnn = "any"

    def __init__(self, noise: float = 1.0, artifact: str | None = None):
        if not float(noise) > 0:
            raise ConfigError(f"reliability.noise={noise!r}: expected a number > 0.")
        self.noise, self.artifact = float(noise), artifact
        self.make_teacher: Callable[[], nn.Module] | None = None

    def build(
        self,
        num_features: int,
        num_classes: int,
        teacher_model: Callable[..., nn.Module],
        self_loops: bool,
    ) -> None:
        from g2m.models import GNNTeacher

        def make_teacher() -> nn.Module:
            gnn = teacher_model(in_channels=num_features, out_channels=num_classes)
            return GNNTeacher(gnn, self_loops=self_loops)

        self.make_teacher = make_teacher

    def train(self, context: StageContext) -> ReliabilityArtifact:
        from g2m.lit.teacher import attach_training_labels

        if self.make_teacher is None:
            raise RuntimeError("ReliabilityStage.build() must run before train().")
        state = context.teacher.model_state
        if state is None:
            raise ArtifactError(
                "the reliability stage needs the teacher's weights, and this teacher artifact "
                "has none (it was made by an older g2m): train the teacher again (drop "
                "teacher.artifact, or run with store=false)."
            )
        started = time.perf_counter()
        graph, split = context.graph, context.split
        observed = observed_subgraph(graph, split)
        teacher = self.make_teacher()
        teacher.load_state_dict(state)
        attach_training_labels(teacher, graph, split)  # a teacher that reads them (C&S)
        teacher.to(observed.x.device).eval()
        adjacency = teacher.adjacency(observed.edge_index, observed.num_nodes)
        seed = context.seed + RELIABILITY_SEED_OFFSET
        generator = torch.Generator(device=observed.x.device).manual_seed(seed)
        noise = torch.randn(observed.x.shape, generator=generator, device=observed.x.device)
        with torch.no_grad():
            clean = teacher(observed.x, adjacency)
            noisy = teacher(observed.x + self.noise * noise, adjacency)
        reliability = torch.full((split.num_nodes,), float("nan"))
        reliability[split.observed] = entropy_change(clean, noisy).cpu()
        seconds = round(time.perf_counter() - started, 2)
        metrics = {"noise": self.noise, "mean": round(float(reliability.nanmean()), 4)}
        return ReliabilityArtifact(reliability, split, context.dataset, graph.num_features,
                                   metrics, {"seconds": seconds})  # fmt: skip

    def load(self, path: Path) -> ReliabilityArtifact:
        return ReliabilityArtifact.load(path)

    def hand_over(
        self,
        artifact: ReliabilityArtifact,
        targets: DistillationTargets,
        objective: nn.Module,
        student: nn.Module,
    ) -> DistillationTargets:
        """The objective samples neighbours by these scores; the targets stay the teacher's."""
        objective.attach_reliability(artifact.reliability)
        return targets

    def describe(self, metrics: dict[str, Any]) -> str:
        return f"noise {metrics['noise']}, mean rho {metrics['mean']:.3f}"
