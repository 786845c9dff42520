"""Stages an objective adds between teacher and student, behind one interface.

An objective lists the stages it needs in ``extra_stages`` (VQGraph's ``("codebook",)``);
each name is a config key whose node's ``_target_`` is an :class:`ExtraStage` subclass
(``loss=vq`` pulls in ``codebook: {_target_: g2m.lit.codebook_stage.CodebookStage, ...}``).
The pipeline knows nothing more about them: it builds each stage at the top of the run,
trains it after the teacher (or reuses its stored artifact), and lets it hand its artifact
to the student stage through :meth:`ExtraStage.hand_over`. Adding an objective with a stage
of its own therefore touches no generic module: one objective file, one stage file beside
its Lightning module, their YAMLs.

A stage may also widen the student's input (NOSMOG's position features): it declares how
many columns it adds (``input_channels``), and its ``hand_over`` returns them as
``targets.inputs`` with a description for the shipped artifact (``targets.input_spec``); the
student is then built for, trained on and shipped for ``[x, inputs]``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Protocol

from torch import Tensor, nn

from g2m.data.splits import NodeSplit
from g2m.run.artifacts import TeacherArtifact
from g2m.run.settings import TrainerSettings

if TYPE_CHECKING:
    from torch_geometric.data import Data


class StageArtifact(Protocol):
    """What a stage leaves in ``<name>.pt``: checked on reuse, summarised in metrics.json.

    An artifact with a ``provenance`` attribute (a dict it saves and loads) is stamped with
    the graph's digest and the stage's config when trained, and checked against them when
    reused (:func:`g2m.run.artifacts.refuse_other_provenance`).
    """

    metrics: dict[str, Any]
    timings: dict[str, Any]

    def save(self, path: Path) -> Path: ...

    def check_compatible(self, dataset: str, num_features: int, split: NodeSplit) -> None: ...


@dataclass(frozen=True)
class DistillationTargets:
    """What the student distils, per node (N nodes, C classes, D dims).

    Attributes:
        logits: ``[N, C]`` soft-label logits (NaN rows for held-out nodes); None when the
            objective needs no teacher.
        embedding: ``[N, D]`` representation targets, or None.
        source: whose logits they are (``teacher``, or the stage that replaced them).
        inputs: ``[N, P]`` columns the student takes after the node features (a stage's
            position features), or None: the node features alone.
        input_spec: what those columns are, recorded in the shipped ``student.pt`` (its
            ``input`` block) so that whoever serves the student knows to supply them.
    """

    logits: Tensor | None
    embedding: Tensor | None
    source: str = "teacher"
    inputs: Tensor | None = None
    input_spec: dict[str, Any] | None = None

    def replace(self, **changes: Any) -> DistillationTargets:
        return replace(self, **changes)


@dataclass
class StageContext:
    """What an extra stage trains on (all built at the top of the run).

    Attributes:
        graph: the full graph (global node ids). split: the node split.
        dataset: the dataset's name (stored in the artifact, checked on reuse).
        teacher: the finished teacher stage's artifact.
        seed: the run's seed (the stage's own samplers start from it).
        run_dir: where the stage keeps ``checkpoints/<name>/``.
        logger: the run's Lightning logger (or False).
        trainer: the Trainer settings every stage shares.
    """

    graph: Data
    split: NodeSplit
    dataset: str
    teacher: TeacherArtifact
    seed: int
    run_dir: Path
    logger: Any
    trainer: TrainerSettings


class ExtraStage:
    """Base class of a stage between teacher and student.

    Subclasses set ``name`` (the config key, the artifact's file ``<name>.pt`` and its
    block in metrics.json) and implement the five methods. ``artifact`` is a path to a
    stored artifact to reuse instead of training (the ``<name>.artifact`` key).
    """

    name: ClassVar[str] = ""
    artifact: str | None = None
    # what the stage needs of the teacher's GNN: "basic" (a PyG BasicGNN to copy: VQGraph's
    # tokenizer), "any" (a trained teacher model of any kind), "none"
    teacher_gnn: ClassVar[str] = "basic"
    input_channels: int = 0  # columns the stage adds to the student's input

    def build(
        self,
        num_features: int,
        num_classes: int,
        teacher_model: Callable[..., nn.Module],
        self_loops: bool,
    ) -> None:
        """Build the stage's model at the top of the run; ``teacher_model(in_channels=,
        out_channels=, **overrides)`` makes a GNN of the teacher's configured kind."""
        raise NotImplementedError

    def train(self, context: StageContext) -> StageArtifact:
        raise NotImplementedError

    def load(self, path: Path) -> StageArtifact:
        raise NotImplementedError

    def hand_over(
        self,
        artifact: StageArtifact,
        targets: DistillationTargets,
        objective: nn.Module,
        student: nn.Module,
    ) -> DistillationTargets:
        """Prepare the objective (e.g. attach frozen codes) and return the student's targets."""
        raise NotImplementedError

    def describe(self, metrics: dict[str, Any]) -> str:
        """A few words for the summary table's row, from the artifact's metrics."""
        return ""
