"""Stage order of a g2m run: data -> teacher -> [the objective's extra stages] -> student.

:func:`run` is the entry from a composed config: it builds the run (:mod:`g2m.run.build`,
the only reader of the config) and :func:`execute`\\ s it. A stage whose artifact is already
stored (``<stage>.artifact=`` or this run's own file) is not retrained. Artifacts land in the
run directory:

==================  ===========================================================
``config.yaml``     the resolved config
``teacher.pt``      teacher logits/embeddings + split (:class:`TeacherArtifact`)
``<stage>.pt``      an extra stage's artifact (``codebook.pt`` for ``loss=vq``)
``student.pt``      deployable student (:mod:`g2m.serve.artifact`)
``checkpoints/``    best-validation Lightning checkpoints of every stage
``logs/``           CSV metrics log (or W&B/TensorBoard files, per ``logger``)
``metrics.json``    dataset, setting, seed, every stage's accuracies
``timings.json``    stage seconds, training rates, inference times, peak GPU memory
==================  ===========================================================
"""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path
from typing import Any

import lightning.pytorch as pl
from omegaconf import DictConfig, OmegaConf
from torch_geometric.data import Data

from g2m.data.source import LoadedGraph
from g2m.data.splits import NodeSplit, make_split
from g2m.errors import ArtifactError
from g2m.io import atomic_json, atomic_write
from g2m.lit.distributed import is_secondary_rank, pin_cuda_device
from g2m.run.artifacts import TeacherArtifact
from g2m.run.build import RunModels, build_run
from g2m.run.extra import DistillationTargets, StageArtifact, StageContext
from g2m.run.outputs import (
    close_logger,
    log_student_artifact,
    run_metrics,
    run_timings,
    student_provenance,
)
from g2m.run.plan import RunPlan
from g2m.run.student_stage import train_student
from g2m.run.summary import format_summary
from g2m.run.teacher_stage import train_teacher
from g2m.serve.artifact import save_student

log = logging.getLogger("g2m")


def run(cfg: DictConfig, run_dir: Path, data: Data | None = None) -> dict[str, Any]:
    """Build the run ``cfg`` describes and execute it (``data``: for ``dataset=memory``)."""
    return execute(build_run(cfg, data), run_dir)


def stored_artifact(
    stage: str,
    configured: Path | str | None,
    load: Any,
    graph: LoadedGraph,
    split: NodeSplit,
    run_dir: Path,
) -> Any | None:
    """The ``stage`` artifact to reuse: ``configured`` if given, else this run's own
    ``<stage>.pt`` if it finished; None if there is neither. Checked against the run
    (dataset, features, split) before it is used."""
    path = Path(configured) if configured else run_dir / f"{stage}.pt"
    if not configured and not path.is_file():
        return None
    artifact = load(path)
    artifact.check_compatible(graph.name, graph.num_features, split)
    log.info("Reusing %s artifact %s", stage, path)
    return artifact


def descriptions(plan: RunPlan, metrics: dict[str, Any]) -> dict[str, str]:
    return {s.name: s.describe(metrics[s.name]) for s in plan.stages if s.name in metrics}


def report_again(plan: RunPlan, run_dir: Path) -> dict[str, Any]:
    metrics = json.loads((run_dir / "metrics.json").read_text())
    table = format_summary(metrics, run_dir, descriptions=descriptions(plan, metrics))
    print(table + "\n(already complete: nothing was rerun)")
    return metrics


def execute(
    plan: RunPlan, run_dir: Path, student_callbacks: tuple[Any, ...] = ()
) -> dict[str, Any]:
    """Run every stage of ``plan`` for its seed; return (and write) the metrics.

    Bad input is rejected before anything is written: the graph is loaded and checked, the
    split drawn and every model built before the first stage trains. Rerunning into the
    same run directory resumes: a finished run is reported again, a stored ``teacher.pt``
    skips the teacher, and an interrupted stage continues from its ``last.ckpt``. With
    ``trainer.devices=N`` the student stage runs on N devices (:mod:`g2m.lit.distributed`);
    rank 0 writes every file. ``student_callbacks`` watch the student's Trainer.
    """
    started = time.perf_counter()
    run_dir = Path(run_dir)
    if (run_dir / "metrics.json").is_file():
        return report_again(plan, run_dir)
    pin_cuda_device(plan.trainer.kwargs)
    graph = plan.source.load(plan.location)
    split = make_split(graph.data, plan.split, plan.seed, plan.held_out_fraction)
    models = RunModels(plan, graph)
    models.check()
    teacher = stored_artifact(
        "teacher", plan.teacher.artifact, TeacherArtifact.load, graph, split, run_dir
    )
    artifacts: dict[str, StageArtifact | None] = {
        s.name: stored_artifact(s.name, s.artifact, s.load, graph, split, run_dir)
        for s in plan.stages
    }
    if is_secondary_rank():
        return join_student_stage(plan, models, graph, split, teacher, artifacts, run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    atomic_write(
        run_dir / "config.yaml",
        lambda tmp: tmp.write_text(OmegaConf.to_yaml(plan.config)),
    )
    logger = plan.logger(save_dir=str(run_dir)) if plan.logger else False
    if logger:
        logger.log_hyperparams(plan.config)
    if teacher is None:
        pl.seed_everything(plan.seed, workers=True, verbose=False)
        teacher = train_teacher(
            models.teacher(),
            graph.data,
            split,
            plan.teacher.schedule,
            plan.trainer,
            run_dir,
            logger,
            graph.name,
            plan.names.teacher,
        )
        teacher.save(run_dir / "teacher.pt")
    context = StageContext(
        graph.data, split, graph.name, teacher, plan.seed, run_dir, logger, plan.trainer
    )
    for stage in plan.stages:
        if artifacts[stage.name] is None:
            pl.seed_everything(plan.seed, workers=True, verbose=False)
            models.build_stage(stage)
            artifacts[stage.name] = stage.train(context)
            artifacts[stage.name].save(run_dir / f"{stage.name}.pt")
    pl.seed_everything(plan.seed, workers=True, verbose=False)
    student, result, targets = distil(
        plan, models, graph, split, teacher, artifacts, run_dir, logger, student_callbacks
    )
    metrics = run_metrics(plan, teacher, artifacts, result, split, targets)
    provenance = student_provenance(plan, metrics)
    save_student(student, run_dir / "student.pt", provenance=provenance, classes=graph.classes)
    log_student_artifact(logger, run_dir / "student.pt", provenance)
    timings = run_timings(plan, graph.data, teacher, artifacts, student, result, started)
    atomic_json(timings, run_dir / "timings.json")
    atomic_json(metrics, run_dir / "metrics.json")  # last: its presence marks a finished run
    close_logger(logger)
    print(
        format_summary(
            metrics, run_dir, timings["wall_seconds"], descriptions=descriptions(plan, metrics)
        )
    )
    return metrics


def distil(
    plan: RunPlan,
    models: RunModels,
    graph: LoadedGraph,
    split: NodeSplit,
    teacher: TeacherArtifact,
    artifacts: dict[str, StageArtifact | None],
    run_dir: Path,
    logger: Any,
    callbacks: tuple[Any, ...] = (),
) -> tuple[Any, Any, DistillationTargets]:
    """The student stage: a fresh student, the targets every extra stage handed over."""
    student = models.student()
    targets = DistillationTargets(teacher.logits, teacher.embedding)
    for stage in plan.stages:
        targets = stage.hand_over(artifacts[stage.name], targets, plan.objective, student)
    student, result = train_student(
        student,
        plan.objective,
        graph.data,
        split,
        targets,
        plan.student.settings,
        plan.trainer,
        run_dir,
        logger,
        plan.seed,
        callbacks,
    )
    return student, result, targets


def join_student_stage(
    plan: RunPlan,
    models: RunModels,
    graph: LoadedGraph,
    split: NodeSplit,
    teacher: TeacherArtifact | None,
    artifacts: dict[str, StageArtifact | None],
    run_dir: Path,
) -> dict[str, Any]:
    """A DDP rank >= 1 (:mod:`g2m.lit.distributed`): train the student with rank 0, write
    nothing. Rank 0 stored the teacher (and any extra stage) before the ranks were started."""
    if teacher is None or any(a is None for a in artifacts.values()):
        raise ArtifactError(
            f"a DDP rank >= 1 found no finished teacher/stage artifact in {run_dir}: "
            "only rank 0 trains the full-graph stages."
        )
    pl.seed_everything(plan.seed, workers=True, verbose=False)
    _, result, _ = distil(plan, models, graph, split, teacher, artifacts, run_dir, False)
    return {"student": result.metrics(split.inductive)}
