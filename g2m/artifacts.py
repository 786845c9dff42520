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


CODEBOOK_ARTIFACT_VERSION = 1


@dataclass
class CodebookArtifact:
    """What VQGraph's student stage needs from the codebook stage, reusable across runs.

    Attributes:
        codebook: ``[K, D]`` the frozen codes.
        embedding: ``[N, D]`` tokenizer embeddings :math:`h` (NaN rows for held-out nodes).
        codes: ``[N]`` each node's nearest code (-1 for held-out nodes).
        similarity: the measure the codes were learnt with (``cosine`` or ``l2``).
        split, dataset, num_features: what the artifact was made for (checked on reuse).

    The teacher's soft code assignments are :meth:`assignments` (a function of the
    temperature, which belongs to the distillation objective).
    """

    codebook: Tensor
    embedding: Tensor
    codes: Tensor
    similarity: str
    split: NodeSplit
    dataset: str
    num_features: int
    metrics: dict[str, Any] = field(default_factory=dict)
    timings: dict[str, Any] = field(default_factory=dict)

    def assignments(self, temperature: float, nodes: Tensor | None = None) -> Tensor:
        """``[N, K]`` (or ``[len(nodes), K]``) soft assignments; rows sum to 1."""
        from g2m.models.codebook import soft_assignment

        embedding = self.embedding if nodes is None else self.embedding[nodes]
        return soft_assignment(embedding, self.codebook, temperature, self.similarity)

    def save(self, path: Path) -> Path:
        state = {k: v for k, v in asdict(self).items() if k != "split"}
        state |= {
            "split": self.split.to_dict(),
            "version": CODEBOOK_ARTIFACT_VERSION,
            "kind": "codebook",
        }
        state |= {k: getattr(self, k).cpu() for k in ("codebook", "embedding", "codes")}
        return atomic_torch_save(state, path)

    @classmethod
    def load(cls, path: Path) -> CodebookArtifact:
        state = read_torch_dict(path, "g2m codebook artifact")
        if state.get("kind") != "codebook" or state.get("version") != CODEBOOK_ARTIFACT_VERSION:
            raise ArtifactError(
                f"{path} is not a g2m codebook artifact (version "
                f"{CODEBOOK_ARTIFACT_VERSION} expected)."
            )
        state.pop("version"), state.pop("kind")
        state["split"] = NodeSplit.from_dict(state["split"])
        return cls(**state)

    def check_compatible(self, dataset: str, num_features: int, split: NodeSplit) -> None:
        """Refuse a codebook made for another dataset, feature dimension or split."""
        problems = []
        if self.dataset != dataset:
            problems.append(f"dataset '{self.dataset}' (this run: '{dataset}')")
        if self.num_features != num_features:
            problems.append(f"{self.num_features} features (this run: {num_features})")
        if self.embedding.size(0) != split.num_nodes or not self.split.same_as(split):
            problems.append("a different split (seed, setting or split protocol differ)")
        if problems:
            raise ArtifactError(
                "The codebook artifact does not match this run: it has " + "; ".join(problems) + "."
            )
