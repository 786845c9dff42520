"""The student stage: distil the stored targets into the MLP, on one device or several.

:func:`train_student` fits a :class:`~g2m.lit.student.StudentSystem` over mini-batches of
observed nodes (``trainer.devices`` ranks under DDP, :mod:`g2m.lit.distributed`), with the
objective and the targets the pipeline hands it (the teacher's, possibly replaced by an
extra stage's, :mod:`g2m.run.extra`), and returns the trained student in eval mode. An
objective that ``prepares_targets`` transforms those targets once first, with the observed
graph (:func:`prepared_logits`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from torch_geometric.data import Data

from g2m.data.splits import NodeSplit, observed_subgraph
from g2m.lit.fit import StageResult, fit_and_test
from g2m.lit.student import StudentSystem
from g2m.losses.base import DistillationObjective
from g2m.models import MLPStudent
from g2m.run.extra import DistillationTargets
from g2m.run.settings import StudentSettings, TrainerSettings


def observed_edges(graph: Data, split: NodeSplit) -> torch.Tensor:
    """``[2, E]`` edges of the observed graph in global ids: none touches a held-out node."""
    if not split.inductive:
        return graph.edge_index
    return split.observed[observed_subgraph(graph, split).edge_index]


def student_inputs(x: torch.Tensor, targets: DistillationTargets) -> torch.Tensor:
    """``[N, F + P]``: the node features and, after them, the columns an extra stage added
    (``targets.inputs``, e.g. NOSMOG's positions); the features alone when there are none."""
    if targets.inputs is None:
        return x
    return torch.cat([x, targets.inputs.to(device=x.device, dtype=x.dtype)], dim=1)


def prepared_logits(
    objective: DistillationObjective, logits: torch.Tensor | None, graph: Data, split: NodeSplit
) -> torch.Tensor | None:
    """The ``[N, C]`` logits the student distils: ``logits`` as stored, or, for an objective
    that ``prepares_targets``, what its ``prepare_targets`` makes of them with the observed
    graph's edges (:func:`observed_edges`: never an edge to a held-out node)."""
    if logits is None or not objective.prepares_targets:
        return logits
    return objective.prepare_targets(logits, observed_edges(graph, split), graph.num_nodes)


def train_student(
    model: MLPStudent,
    objective: DistillationObjective,
    graph: Data,
    split: NodeSplit,
    targets: DistillationTargets,
    settings: StudentSettings,
    trainer: TrainerSettings,
    run_dir: Path,
    logger: Any,
    seed: int,
    callbacks: tuple[Any, ...] = (),
    num_classes: int | None = None,
) -> tuple[MLPStudent, StageResult]:
    """Distil ``targets`` into ``model``; ``callbacks`` watch its Trainer."""
    system = StudentSystem(
        model,
        objective,
        student_inputs(graph.x, targets),
        graph.y,
        prepared_logits(objective, targets.logits, graph, split),
        targets.embedding,
        split,
        lr=settings.schedule.lr,
        weight_decay=settings.schedule.weight_decay,
        batch_size=settings.batch_size,
        seed=seed,
        edge_index=observed_edges(graph, split) if objective.needs_edges else None,
        distill_val=settings.distill_val,
        num_classes=num_classes,
        steps_per_call=settings.steps_per_call,
        cuda_graph=settings.cuda_graph,
    )
    result = fit_and_test(
        system,
        settings.schedule,
        trainer,
        run_dir,
        logger,
        full_graph=False,
        extra_callbacks=callbacks,
    )
    return model.cpu().eval(), result
