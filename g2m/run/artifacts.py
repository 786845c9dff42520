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


def read_artifact_state(path: Path, kind: str, version: int, tagged: bool = False) -> dict:
    """The saved state of a ``kind`` artifact, its split rebuilt; refuses anything else.

    ``tagged`` artifacts also store ``kind`` (the teacher artifact predates that key).
    """
    state = read_torch_dict(path, f"g2m {kind} artifact")
    if state.get("version") != version or (tagged and state.get("kind") != kind):
        raise ArtifactError(f"{path} is not a g2m {kind} artifact (version {version} expected).")
    state.pop("version")
    state.pop("kind", None)
    state["split"] = NodeSplit.from_dict(state["split"])
    return state


def refuse_mismatch(
    kind: str, artifact: Any, num_rows: int, dataset: str, num_features: int, split: NodeSplit
) -> None:
    """Raise :class:`ArtifactError` if ``artifact`` (``dataset``, ``num_features``, ``split``
    attributes, ``num_rows`` node rows) was made for another dataset, feature size or split."""
    problems = []
    if artifact.dataset != dataset:
        problems.append(f"dataset '{artifact.dataset}' (this run: '{dataset}')")
    if artifact.num_features != num_features:
        problems.append(f"{artifact.num_features} features (this run: {num_features})")
    if num_rows != split.num_nodes:
        problems.append(f"{num_rows} nodes (this run: {split.num_nodes})")
    elif not artifact.split.same_as(split):
        problems.append("a different split (seed, setting or split protocol differ)")
    if problems:
        raise ArtifactError(
            f"The {kind} artifact does not match this run: it has " + "; ".join(problems) + "."
        )


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
        return cls(**read_artifact_state(path, "teacher", TEACHER_ARTIFACT_VERSION))

    def check_compatible(self, dataset: str, num_features: int, split: NodeSplit) -> None:
        """Refuse targets from another dataset, feature dimension or split (seed/setting)."""
        refuse_mismatch("teacher", self, self.logits.size(0), dataset, num_features, split)


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
        logits: ``[N, C]`` the tokenizer's class logits (NaN rows for held-out nodes), the
            soft labels under ``codebook.soft_labels=tokenizer``; stored only for a graph
            class head (``codebook.classifier=graph``), None otherwise.

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
    logits: Tensor | None = None

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
        if self.logits is not None:
            state["logits"] = self.logits.cpu()
        return atomic_torch_save(state, path)

    @classmethod
    def load(cls, path: Path) -> CodebookArtifact:
        state = read_artifact_state(path, "codebook", CODEBOOK_ARTIFACT_VERSION, tagged=True)
        return cls(**state)

    def check_compatible(self, dataset: str, num_features: int, split: NodeSplit) -> None:
        """Refuse a codebook made for another dataset, feature dimension or split."""
        refuse_mismatch("codebook", self, self.embedding.size(0), dataset, num_features, split)
