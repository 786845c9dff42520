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
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import partial
from pathlib import Path
from typing import Any

import lightning.pytorch as pl
import torch
from omegaconf import DictConfig, OmegaConf
from torch_geometric.data import Data

from g2m import __version__
from g2m.data.source import LoadedGraph
from g2m.data.splits import NodeSplit, make_split
from g2m.errors import ArtifactError
from g2m.io import atomic_json, atomic_write
from g2m.lit.distributed import is_secondary_rank, pin_cuda_device
from g2m.run.artifacts import (
    TEACHER_ARTIFACT_VERSION,
    TeacherArtifact,
    refuse_other_provenance,
)
from g2m.run.baseline import BASELINE_NAME, compare, train_label_only
from g2m.run.build import RunModels, build_run
from g2m.run.extra import DistillationTargets, ExtraStage, StageArtifact, StageContext
from g2m.run.outputs import (
    log_student_artifact,
    run_device,
    run_metrics,
    run_timings,
    student_provenance,
)
from g2m.run.plan import RunPlan
from g2m.run.rundir import check_run_dir, clear, locked_run_dir
from g2m.run.store import artifact_key, link_into, tensor_digest
from g2m.run.student_stage import student_inputs, train_student
from g2m.run.summary import format_summary
from g2m.run.teacher_stage import train_teacher
from g2m.serve.artifact import save_student

log = logging.getLogger("g2m")


class PhaseClock:
    """Wall seconds of each phase of a run, in order (``phase_seconds`` in timings.json):
    where the time went that the stages' own seconds do not show (loading and checking the
    graph, computing and writing the teacher's targets, the inference timings)."""

    def __init__(self) -> None:
        self.started = self.last = time.perf_counter()
        self.seconds: dict[str, float] = {}

    def lap(self, phase: str) -> None:
        """Charge the time since the last lap to ``phase`` (added to what it has)."""
        now = time.perf_counter()
        self.seconds[phase] = round(self.seconds.get(phase, 0.0) + now - self.last, 2)
        self.last = now


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
    reuse_own: bool = True,
    expected: Callable[[], dict[str, Any]] | None = None,
) -> Any | None:
    """The ``stage`` artifact to reuse: ``configured`` if given, else this run's own
    ``<stage>.pt`` if it finished (and ``reuse_own``); None if there is neither. Checked
    against the run (dataset, features, split, and ``expected()``: the graph and config that
    should have made it) before it is used."""
    path = Path(configured) if configured else run_dir / f"{stage}.pt"
    if not configured and (not reuse_own or not path.is_file()):
        return None
    artifact = load(path)
    artifact.check_compatible(graph.name, graph.num_features, split)
    if expected is not None:
        refuse_other_provenance(stage, artifact, expected(), path)
    log.info("Reusing %s artifact %s", stage, path)
    return artifact


def descriptions(plan: RunPlan, metrics: dict[str, Any]) -> dict[str, str]:
    labels = {s.name: s.describe(metrics[s.name]) for s in plan.stages if s.name in metrics}
    return labels | ({"baseline": BASELINE_NAME} if "baseline" in metrics else {})


def report_again(plan: RunPlan, run_dir: Path) -> dict[str, Any]:
    metrics = json.loads((run_dir / "metrics.json").read_text())
    table = format_summary(metrics, run_dir, descriptions=descriptions(plan, metrics))
    show(table + "\n(already complete: nothing was rerun)")
    return metrics


@dataclass
class RunState:
    """One run in progress: the plan, where it writes, and what it has made so far."""

    plan: RunPlan
    run_dir: Path
    graph: LoadedGraph
    split: NodeSplit
    models: RunModels
    keys: StoreKeys
    teacher: TeacherArtifact | None
    artifacts: dict[str, StageArtifact | None]
    loggers: Any = None
    reused: list[str] = field(default_factory=list)


def execute(
    plan: RunPlan, run_dir: Path, student_callbacks: tuple[Any, ...] = ()
) -> dict[str, Any]:
    """Run every stage of ``plan`` for its seed; return (and write) the metrics.

    Bad input is rejected before anything is written: the graph is loaded and checked, the
    split drawn and every model built before the first stage trains. A teacher (and an extra
    stage's artifact) comes from, in order: ``<stage>.artifact``, this run directory (an
    interrupted run), the artifact store (:mod:`g2m.run.store`), or training now. Rerunning
    into the same run directory resumes: a finished run is reported again and an interrupted
    stage continues from its ``last.ckpt``. With ``trainer.devices=N`` the student stage runs
    on N devices (:mod:`g2m.lit.distributed`); rank 0 writes every file.
    ``student_callbacks`` watch the student's Trainer.
    """
    clock = PhaseClock()
    run_dir = Path(run_dir)
    to_clear = check_run_dir(run_dir, plan.config, plan.overwrite)
    if not to_clear and (run_dir / "metrics.json").is_file():
        return report_again(plan, run_dir)
    if is_secondary_rank():
        return join_student_stage(prepare(plan, run_dir))
    state = prepare(plan, run_dir, reuse_own=not to_clear)
    with locked_run_dir(run_dir):
        clear(to_clear)
        return run_stages(state, student_callbacks, clock)


def run_stages(state: RunState, student_callbacks: tuple[Any, ...], clock: PhaseClock) -> dict:
    """Every stage of a prepared run, in the run directory it holds (see :func:`execute`)."""
    plan = state.plan
    start_writing(state)
    clock.lap("prepare")
    keys = state.keys
    if plan.objective.needs_teacher and state.teacher is None:
        state.teacher = obtain(state, "teacher", keys.teacher(), lambda: train_teacher_of(state))
        clock.lap("teacher")
    for stage in plan.stages:
        if state.artifacts[stage.name] is None:
            train = partial(train_stage_of, state, stage)
            state.artifacts[stage.name] = obtain(state, stage.name, keys.stage(stage.name), train)
            clock.lap(stage.name)
    pl.seed_everything(plan.seed, workers=True, verbose=False)
    student, result, targets = distil(state, student_callbacks)
    clock.lap("student")
    return finish(state, student, result, targets, clock)


def prepare(plan: RunPlan, run_dir: Path, reuse_own: bool = True) -> RunState:
    """Load and check the graph, draw the split, build every model, find the artifacts this
    run is told to reuse or already has (``reuse_own``: its own, in ``run_dir``):
    everything that can fail before a file is written."""
    if plan.threads is not None:
        torch.set_num_threads(plan.threads)
    pin_cuda_device(plan.trainer.kwargs)
    graph = plan.source.load(plan.location)
    split = make_split(graph.data, plan.split, plan.seed, plan.held_out_fraction)
    models = RunModels.for_graph(plan, graph)
    models.check()
    keys = StoreKeys(plan, graph, split)
    teacher = None
    if plan.objective.needs_teacher and plan.teacher.ensemble is not None:
        teacher = plan.teacher.ensemble.artifact(
            graph.name, graph.data.y, graph.num_features, split, keys.graph_digest()
        )
    elif plan.objective.needs_teacher:
        configured = plan.teacher.artifact
        teacher = stored_artifact(
            "teacher", configured, TeacherArtifact.load, graph, split, run_dir, reuse_own,
            partial(keys.provenance, "teacher"),
        )  # fmt: skip
    artifacts = {
        s.name: stored_artifact(
            s.name,
            s.artifact,
            s.load,
            graph,
            split,
            run_dir,
            reuse_own,
            partial(keys.provenance, s.name),
        )  # fmt: skip
        for s in plan.stages
    }
    return RunState(plan, run_dir, graph, split, models, keys, teacher, artifacts)


def start_writing(state: RunState) -> None:
    """The run directory, its ``config.yaml`` and the run's logger."""
    plan, run_dir = state.plan, state.run_dir
    run_dir.mkdir(parents=True, exist_ok=True)
    atomic_write(
        run_dir / "config.yaml", lambda tmp: tmp.write_text(OmegaConf.to_yaml(plan.config))
    )
    from g2m.lit.loggers import RunLoggers

    state.loggers = RunLoggers(plan.logger, str(run_dir), plan.config)


def train_teacher_of(state: RunState) -> TeacherArtifact:
    plan = state.plan
    pl.seed_everything(plan.seed, workers=True, verbose=False)
    return train_teacher(
        state.models.teacher(),
        state.graph.data,
        state.split,
        plan.teacher.schedule,
        plan.trainer,
        state.run_dir,
        state.loggers.for_stage("teacher"),
        state.graph.name,
        plan.names.teacher,
    )


def train_stage_of(state: RunState, stage: ExtraStage) -> StageArtifact:
    plan = state.plan
    pl.seed_everything(plan.seed, workers=True, verbose=False)
    state.models.build_stage(stage)
    context = StageContext(
        state.graph.data,
        state.split,
        state.graph.name,
        state.teacher,
        plan.seed,
        state.run_dir,
        state.loggers.for_stage(stage.name),
        plan.trainer,
    )
    return stage.train(context)


def finish(
    state: RunState, student: Any, result: Any, targets: DistillationTargets, clock: PhaseClock
) -> dict[str, Any]:
    """metrics.json (last: its presence marks a finished run), timings.json, student.pt."""
    plan, run_dir = state.plan, state.run_dir
    metrics = run_metrics(plan, state.teacher, state.artifacts, result, state.split, targets)
    baseline_seconds = add_baseline(state, metrics)
    clock.lap("baseline")
    provenance = student_provenance(plan, metrics)
    classes = state.graph.classes
    names = state.graph.class_names
    save_student(
        student,
        run_dir / "student.pt",
        provenance,
        classes=classes,
        class_names=names,
        input_spec=targets.input_spec,
    )
    log_student_artifact(state.loggers.shared, run_dir / "student.pt", provenance)
    clock.lap("student_artifact")
    inputs = student_inputs(state.graph.data.x, targets)
    timings = run_timings(
        plan, inputs, state.teacher, state.artifacts, student, result, clock.started
    )
    clock.lap("inference_timing")
    timings["phase_seconds"] = clock.seconds
    timings["reused_from_store"] = state.reused
    if baseline_seconds is not None:
        timings["baseline_seconds"] = round(baseline_seconds, 2)
    atomic_json(timings, run_dir / "timings.json")
    atomic_json(metrics, run_dir / "metrics.json")
    state.loggers.finish()
    table = format_summary(
        metrics, run_dir, timings["wall_seconds"], descriptions=descriptions(plan, metrics)
    )
    show(table)
    return metrics


def add_baseline(state: RunState, metrics: dict[str, Any]) -> float | None:
    """Train the label-only baseline (``baseline=true``, a run with a teacher) and add its
    keys to ``metrics`` (:mod:`g2m.run.baseline`); its seconds, or None if it did not run."""
    plan, data = state.plan, state.graph.data
    if not plan.baseline or "teacher" not in metrics:
        return None
    block, seconds = train_label_only(
        state.models.student,
        data.x,
        data.y,
        state.split,
        plan.student.settings.schedule,
        plan.trainer.on_tie,
        plan.seed,
        run_device(plan.trainer.kwargs),
    )
    metrics.update(compare(metrics, block, plan.names.teacher))
    return seconds


def show(table: str) -> None:
    """The summary on stdout, and in ``train.log`` (logger ``g2m.summary``, file only)."""
    print(table)
    logging.getLogger("g2m.summary").info(table)


class StoreKeys:
    """The store keys of a run's artifacts (:func:`g2m.run.store.artifact_key`): the graph's
    content, the split, the seed and the config that determines each; computed on demand."""

    def __init__(self, plan: RunPlan, graph: LoadedGraph, split: NodeSplit):
        self.plan, self.graph, self.split = plan, graph, split
        self._teacher: str | None = None
        self._graph: str | None = None

    def graph_digest(self) -> str:
        """SHA-256 of the graph's features, edges, labels and masks."""
        if self._graph is None:
            data = self.graph.data
            masks = [getattr(data, k, None) for k in ("train_mask", "val_mask", "test_mask")]
            self._graph = tensor_digest(data.x, data.edge_index, data.y, *masks)
        return self._graph

    def provenance(self, kind: str) -> dict[str, Any]:
        """What a ``kind`` artifact records about what made it (checked when reused):
        the graph's digest and the teacher's or the stage's config."""
        return {"graph": self.graph_digest(), "config": (self.plan.identity or {}).get(kind)}

    def teacher(self) -> str:
        if self._teacher is None:
            identity = self.plan.identity or {}
            parts = (self.split.train, self.split.val, self.split.test, self.split.test_ind)
            self._teacher = artifact_key(
                {
                    "stage": "teacher",
                    "graph": self.graph_digest(),
                    "split": tensor_digest(*parts),
                    "seed": self.plan.seed,
                    "teacher": identity.get("teacher"),
                    "trainer": identity.get("trainer"),
                    "format": TEACHER_ARTIFACT_VERSION,
                    "g2m": __version__,
                }
            )
        return self._teacher

    def stage(self, name: str) -> str:
        identity = self.plan.identity or {}
        return artifact_key(
            {
                "stage": name,
                "teacher": self.teacher(),
                "config": identity.get(name),
                "g2m": __version__,
            }
        )


def obtain(state: RunState, kind: str, key: str, train: Callable[[], Any]) -> Any:
    """The ``kind`` artifact from the store, or trained now (and stored); either way in the
    run directory as ``<kind>.pt``."""
    plan, own = state.plan, state.run_dir / f"{kind}.pt"

    def trained() -> Any:
        artifact = train()
        if hasattr(artifact, "provenance"):  # a plugin's artifact may not record it
            artifact.provenance = state.keys.provenance(kind)
        return artifact

    if plan.store is None:
        artifact = trained()
        artifact.save(own)
        return artifact
    with plan.store.reserved(kind, key) as path:
        artifact = load_from_store(kind, key, path, artifact_loader(plan, kind).load)
        if artifact is None:
            artifact = trained()
            artifact.save(path)
            plan.store.describe(kind, key, about(plan, kind, artifact, state.run_dir))
        else:
            state.reused.append(kind)
    link_into(path, own)
    return artifact


def artifact_loader(plan: RunPlan, kind: str) -> Any:
    """What loads a ``kind`` artifact: the teacher artifact class, or the extra stage."""
    if kind == "teacher":
        return TeacherArtifact
    return next(s for s in plan.stages if s.name == kind)


def load_from_store(kind: str, key: str, path: Path, load: Callable[[Path], Any]) -> Any | None:
    if not path.is_file():
        return None
    try:
        artifact = load(path)
    except ArtifactError as err:  # unreadable or from an older format: train it again
        log.warning("The stored %s %s cannot be used (%s); training it again.", kind, path, err)
        return None
    log.info("Reusing %s artifact %s from the store (key %s)", kind, path, key)
    return artifact


def about(plan: RunPlan, kind: str, artifact: Any, run_dir: Path) -> dict[str, Any]:
    """The store's note beside an artifact: what it is and which run trained it."""
    return {
        "kind": kind,
        "dataset": plan.names.dataset,
        "split": plan.names.split,
        "setting": plan.names.setting,
        "seed": plan.seed,
        "teacher": plan.names.teacher,
        "trained_in": str(run_dir.resolve()),
        "created": datetime.now(UTC).isoformat(timespec="seconds"),
        "metrics": artifact.metrics,
        "config": (plan.identity or {}).get(kind),
    }


def distil(
    state: RunState, callbacks: tuple[Any, ...] = ()
) -> tuple[Any, Any, DistillationTargets]:
    """The student stage: a fresh student, the targets every extra stage handed over."""
    plan, teacher = state.plan, state.teacher
    student = state.models.distilled_student()
    if teacher is None:
        targets = DistillationTargets(None, None, source="none")
    else:
        targets = DistillationTargets(teacher.logits, teacher.embedding)
    for stage in plan.stages:
        targets = stage.hand_over(state.artifacts[stage.name], targets, plan.objective, student)
    plan.objective.attach_student(student)
    student, result = train_student(
        student,
        plan.objective,
        state.graph.data,
        state.split,
        targets,
        plan.student.settings,
        plan.trainer,
        state.run_dir,
        state.loggers.for_stage("student") if state.loggers else False,
        plan.seed,
        callbacks,
        num_classes=state.graph.num_classes,
    )
    return student, result, targets


def join_student_stage(state: RunState) -> dict[str, Any]:
    """A DDP rank >= 1 (:mod:`g2m.lit.distributed`): train the student with rank 0, write
    nothing. Rank 0 stored the teacher (and any extra stage) before the ranks were started."""
    plan = state.plan
    if (plan.objective.needs_teacher and state.teacher is None) or None in state.artifacts.values():
        raise ArtifactError(
            f"a DDP rank >= 1 found no finished teacher/stage artifact in {state.run_dir}: "
            "only rank 0 trains the full-graph stages."
        )
    pl.seed_everything(plan.seed, workers=True, verbose=False)
    _, result, _ = distil(state)
    return {"student": result.metrics(state.split.inductive)}
