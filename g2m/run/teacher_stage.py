"""The teacher stage: train a GNN full-graph and store what distillation needs from it.

:func:`train_teacher` fits a :class:`~g2m.lit.teacher.TeacherSystem` (selection on
validation accuracy, test once at the best checkpoint) and returns a
:class:`~g2m.run.artifacts.TeacherArtifact`: the eval-mode logits and last-hidden embeddings
of every observed node from one full-graph pass, its weights, the split, and the stage's
metrics and timings (its full-graph inference time included).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from torch_geometric.data import Data

from g2m.bench.timing import median_ms
from g2m.data.splits import NodeSplit
from g2m.lit.fit import fit_and_test
from g2m.lit.teacher import TeacherSystem
from g2m.models import GNNTeacher, predict_full_graph
from g2m.run.artifacts import TeacherArtifact
from g2m.run.settings import StageSchedule, TrainerSettings


def train_teacher(
    model: GNNTeacher,
    graph: Data,
    split: NodeSplit,
    schedule: StageSchedule,
    trainer: TrainerSettings,
    run_dir: Path,
    logger: Any,
    dataset: str,
    teacher_name: str,
) -> TeacherArtifact:
    """Train ``model`` on the observed graph; its targets for every observed node."""
    num_classes = int(graph.y.max()) + 1
    system = TeacherSystem(model, graph, split, lr=schedule.lr, weight_decay=schedule.weight_decay)
    result = fit_and_test(system, schedule, trainer, run_dir, logger, full_graph=True)
    # the teacher's targets: one eval-mode full-graph pass where the graph already sits
    observed = system.observed
    model.to(observed.x.device).eval()
    logits, embedding = predict_full_graph(model, observed.x, observed.adj_t)
    # predict_full_graph just ran the same forward pass: it is the warm-up
    inference_ms = median_ms(lambda: model(observed.x, observed.adj_t), observed.x.device, warmup=0)
    full_logits = torch.full((split.num_nodes, num_classes), float("nan"))
    full_embedding = torch.full((split.num_nodes, embedding.size(1)), float("nan"))
    full_logits[split.observed], full_embedding[split.observed] = logits.cpu(), embedding.cpu()
    model.cpu()
    weights = {k: v.detach().clone() for k, v in model.state_dict().items()}
    return TeacherArtifact(
        full_logits,
        full_embedding,
        split,
        dataset,
        teacher_name,
        graph.num_features,
        metrics=result.metrics(split.inductive),
        timings={
            "seconds": round(result.seconds, 2),
            "inference_ms": round(inference_ms, 3),
            "inference_device": observed.x.device.type,
            **result.rates(),
        },
        model_state=weights,
    )
