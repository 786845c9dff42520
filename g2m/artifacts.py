"""Run artifacts written atomically, and the teacher artifact a student run can reuse.

Every file is written to a temporary name in the same folder and renamed into place, so a
run killed at any moment never leaves a truncated file that a later run would load.

The teacher artifact holds what distillation needs from the teacher, computed once at the
best-validation checkpoint: logits ``[N, C]`` and last-hidden embeddings ``[N, D]`` from the
*observed* graph (rows of held-out inductive nodes are NaN, so they cannot leak into a
loss), the split it was trained on, and enough metadata to refuse a mismatched reuse.
"""

from __future__ import annotations

import json
import os
import tempfile
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from g2m.data.splits import NodeSplit

TEACHER_ARTIFACT_VERSION = 1


def atomic_write(path: Path, write: Any) -> Path:
    """Call ``write(tmp_path)`` then rename to ``path`` (same filesystem, atomic)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        write(Path(tmp))
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def atomic_torch_save(obj: Any, path: Path) -> Path:
    return atomic_write(path, lambda tmp: torch.save(obj, tmp))


def atomic_json(obj: Any, path: Path) -> Path:
    return atomic_write(path, lambda tmp: tmp.write_text(json.dumps(obj, indent=2) + "\n"))


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
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"Teacher artifact not found: {path}")
        try:
            state = torch.load(path, map_location="cpu", weights_only=False)
        except Exception as err:
            raise ValueError(f"{path} is not a readable g2m teacher artifact ({err}).") from err
        if not isinstance(state, dict) or state.get("version") != TEACHER_ARTIFACT_VERSION:
            raise ValueError(
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
            raise ValueError(
                "The teacher artifact does not match this run: it has " + "; ".join(problems) + "."
            )
