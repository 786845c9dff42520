"""Run artifacts written atomically, and the teacher artifact a student run can reuse.

Written atomically (:mod:`g2m.io`).

The teacher artifact holds what distillation needs from the teacher, computed once at the
best-validation checkpoint: logits ``[N, C]`` and last-hidden embeddings ``[N, D]`` from the
*observed* graph (rows of held-out inductive nodes are NaN, so they cannot leak into a
loss), the split it was trained on, and enough metadata to refuse a mismatched reuse.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from torch import Tensor

from g2m.data.splits import NodeSplit
from g2m.errors import ArtifactError
from g2m.io import atomic_torch_save, read_torch_dict

TEACHER_ARTIFACT_VERSION = 1


@dataclass
class TeacherArtifact:
    """Stored teacher targets (see module docstring)."""

    logits: Tensor
    embedding: Tensor
    split: NodeSplit
    dataset: str
    teacher: str
    num_features: int
    metrics: dict[str, Any] = field(default_factory=dict)
    timings: dict[str, Any] = field(default_factory=dict)

    def save(self, path: Path) -> Path:
        state = {k: v for k, v in asdict(self).items() if k != "split"}
        state |= {
            "split": self.split.to_dict(),
            "version": TEACHER_ARTIFACT_VERSION,
            "logits": self.logits.cpu(),
            "embedding": self.embedding.cpu(),
        }
        return atomic_torch_save(state, path)

    @classmethod
    def load(cls, path: Path) -> TeacherArtifact:
        state = read_torch_dict(path, "g2m teacher artifact")
        if state.get("version") != TEACHER_ARTIFACT_VERSION:
            raise ArtifactError(
                f"{path} is not a g2m teacher artifact (version "
                f"{TEACHER_ARTIFACT_VERSION} expected)."
            )
        state.pop("version")
        state["split"] = NodeSplit.from_dict(state["split"])
        return cls(**state)

    def check_compatible(self, dataset: str, num_features: int, split: NodeSplit) -> None:
        """Refuse targets from another dataset, feature dimension or split (seed/setting)."""
        problems = []
        if self.dataset != dataset:
            problems.append(f"dataset '{self.dataset}' (this run: '{dataset}')")
        if self.num_features != num_features:
            problems.append(f"{self.num_features} features (this run: {num_features})")
        if self.logits.size(0) != split.num_nodes:
            problems.append(f"{self.logits.size(0)} nodes (this run: {split.num_nodes})")
        elif not self.split.same_as(split):
            problems.append("a different split (seed, setting or split protocol differ)")
        if problems:
            raise ArtifactError(
                "The teacher artifact does not match this run: it has " + "; ".join(problems) + "."
            )
