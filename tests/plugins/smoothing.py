"""An objective with a stage of its own, written outside g2m: what a user's method looks like.

``SmoothedSoftLogits`` is GLNN's objective distilling teacher logits that a ``smoothing``
stage first propagated over the graph (:math:`Z \\leftarrow \\hat A Z`, ``rounds`` times).
Nothing in g2m knows about either class: a run selects them with overrides only,

    loss._target_=tests.plugins.smoothing.SmoothedSoftLogits
    +smoothing={_target_:tests.plugins.smoothing.SmoothingStage,rounds:2}
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch_geometric.utils import scatter

from g2m.io import atomic_torch_save
from g2m.losses.glnn import SoftLogitDistillation
from g2m.run.extra import DistillationTargets, ExtraStage, StageContext


class SmoothedSoftLogits(SoftLogitDistillation):
    extra_stages = ("smoothing",)


@dataclass
class SmoothedLogits:
    logits: torch.Tensor
    dataset: str
    num_features: int
    metrics: dict[str, Any] = field(default_factory=dict)
    timings: dict[str, Any] = field(default_factory=dict)

    def save(self, path: Path) -> Path:
        return atomic_torch_save(self.__dict__, path)

    def check_compatible(self, dataset, num_features, split) -> None:
        assert (dataset, num_features) == (self.dataset, self.num_features)


class SmoothingStage(ExtraStage):
    name = "smoothing"

    def __init__(self, rounds: int, artifact: str | None = None):
        if rounds < 1:
            raise ValueError(f"rounds must be >= 1, got {rounds}")
        self.rounds, self.artifact = rounds, artifact
        self.built = False

    def build(self, num_features, num_classes, teacher_model, self_loops) -> None:
        self.built = True

    def train(self, context: StageContext) -> SmoothedLogits:
        probs = context.teacher.logits.softmax(-1).nan_to_num(0.0)
        src, dst = context.graph.edge_index
        for _ in range(self.rounds):
            probs = 0.5 * probs + 0.5 * scatter(probs[src], dst, 0, probs.size(0), "mean")
        y, split = context.graph.y, context.split
        acc = {
            p: float((probs[getattr(split, p)].argmax(-1) == y[getattr(split, p)]).float().mean())
            for p in ("val", "test")
        }
        metrics = {"val_acc": acc["val"], "test_acc": acc["test"], "rounds": self.rounds}
        return SmoothedLogits(probs.log(), context.dataset, context.graph.num_features, metrics)

    def load(self, path: Path) -> SmoothedLogits:
        return SmoothedLogits(**torch.load(path, weights_only=True))

    def hand_over(self, artifact, targets: DistillationTargets, objective, student):
        return targets.replace(logits=artifact.logits, source="smoothing")

    def describe(self, metrics: dict[str, Any]) -> str:
        return f"{metrics['rounds']} rounds"
