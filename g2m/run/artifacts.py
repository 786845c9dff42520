"""The teacher artifact a student run can reuse, and the helpers every stage artifact shares.

Written atomically (:mod:`g2m.io`). The teacher artifact holds what distillation needs from
the teacher, computed once at the best-validation checkpoint: logits ``[N, C]`` and
last-hidden embeddings ``[N, D]`` from the *observed* graph (rows of held-out inductive nodes
are NaN, so they cannot leak into a loss), the teacher's weights at that checkpoint (for
stages that run the teacher again, such as KRD's reliability), the split it was trained on,
and enough metadata to refuse a mismatched reuse.
"""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any, ClassVar

from torch import Tensor

from g2m.data.splits import NodeSplit
from g2m.errors import ArtifactError
from g2m.io import atomic_torch_save, read_torch_dict
from g2m.run.rundir import choices_first, flatten

log = logging.getLogger("g2m")

# 2 added the teacher's weights (model_state); a version-1 file still loads, without them
TEACHER_ARTIFACT_VERSION = 2
READABLE_TEACHER_VERSIONS = (1, 2)


def read_artifact_state(
    path: Path, kind: str, version: int, tagged: bool = False, readable: tuple[int, ...] = ()
) -> dict:
    """The saved state of a ``kind`` artifact, its split rebuilt; refuses anything else.

    ``tagged`` artifacts also store ``kind`` (the teacher artifact predates that key);
    ``readable`` lists older versions that still load (default: ``version`` only).
    """
    state = read_torch_dict(path, f"g2m {kind} artifact")
    versions = readable or (version,)
    foreign = state.get("version") not in versions or (tagged and state.get("kind") != kind)
    if foreign or "split" not in state or (not tagged and "logits" not in state):
        what = f" (it is a g2m {state['kind']} file)" if isinstance(state.get("kind"), str) else ""
        raise ArtifactError(
            f"{path} is not a g2m {kind} artifact{what}: {kind}.artifact takes the {kind}.pt "
            f"of a g2m run (version {version})."
        )
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


class NodeTableArtifact:
    """Mixin of a stage's artifact dataclass that holds tensors with a row per node: saved
    as a plain dict (its ``kind`` and ``version`` tagged, tensors on the CPU, the split as a
    dict), loaded back and checked on reuse against the run's dataset, features and split
    (the first of ``tensors`` gives the node count). The dataclass has ``split``,
    ``dataset`` and ``num_features`` fields."""

    kind: ClassVar[str]
    version: ClassVar[int]
    tensors: ClassVar[tuple[str, ...]]

    def save(self, path: Path) -> Path:
        state = {f.name: getattr(self, f.name) for f in fields(self) if f.name != "split"}
        state |= {"split": self.split.to_dict(), "version": self.version, "kind": self.kind}
        for name in self.tensors:
            if getattr(self, name) is not None:
                state[name] = getattr(self, name).cpu()
        return atomic_torch_save(state, path)

    @classmethod
    def load(cls, path: Path) -> Any:
        return cls(**read_artifact_state(path, cls.kind, cls.version, tagged=True))

    def check_compatible(self, dataset: str, num_features: int, split: NodeSplit) -> None:
        """Refuse an artifact made for another dataset, feature dimension or split."""
        rows = getattr(self, self.tensors[0]).size(0)
        refuse_mismatch(self.kind, self, rows, dataset, num_features, split)


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
    provenance: dict[str, Any] = field(default_factory=dict)
    model_state: dict[str, Tensor] | None = None  # the teacher's state_dict (None: version 1)

    def save(self, path: Path) -> Path:
        state = {k: v for k, v in asdict(self).items() if k not in ("split", "model_state")}
        state |= {
            "split": self.split.to_dict(),
            "version": TEACHER_ARTIFACT_VERSION,
            "logits": self.logits.cpu(),
            "embedding": self.embedding.cpu(),
        }
        if self.model_state is not None:
            state["model_state"] = {k: v.detach().cpu() for k, v in self.model_state.items()}
        return atomic_torch_save(state, path)

    @classmethod
    def load(cls, path: Path) -> TeacherArtifact:
        version, readable = TEACHER_ARTIFACT_VERSION, READABLE_TEACHER_VERSIONS
        return cls(**read_artifact_state(path, "teacher", version, readable=readable))

    def check_compatible(self, dataset: str, num_features: int, split: NodeSplit) -> None:
        """Refuse targets from another dataset, feature dimension or split (seed/setting)."""
        refuse_mismatch("teacher", self, self.logits.size(0), dataset, num_features, split)


def refuse_other_provenance(kind: str, artifact: Any, expected: dict[str, Any], path: Path) -> None:
    """Raise :class:`ArtifactError` if ``artifact`` was made from another graph or config.

    ``provenance`` (stamped when the artifact was trained) holds a digest of the graph
    (``graph``) and the config that made it (``config``: the teacher's, or the stage's);
    ``expected`` is this run's. An artifact from before provenance was recorded is used
    with a warning.
    """
    recorded = getattr(artifact, "provenance", None) or {}
    if not recorded:
        log.warning(
            "The %s artifact %s records no graph or config (made by an older g2m): not checked.",
            kind,
            path,
        )
        return
    problems = []
    if recorded.get("graph") != expected.get("graph"):
        problems.append("it was made from another graph (its features, edges or labels differ)")
    old, new = flatten(recorded.get("config") or {}), flatten(expected.get("config") or {})
    differing = choices_first(k for k in old.keys() | new.keys() if old.get(k) != new.get(k))
    if differing:
        shown = "; ".join(
            f"{kind}.{k}={old.get(k)!r} (this run: {new.get(k)!r})" for k in differing[:4]
        )
        problems.append(f"it was made with {shown}" + ("; ..." if len(differing) > 4 else ""))
    if problems:
        raise ArtifactError(
            f"The {kind} artifact {path} does not match this run: "
            + "; ".join(problems)
            + f". Pass the {kind}.pt of a run with this data and {kind} config, or drop "
            f"{kind}.artifact to train one."
        )
