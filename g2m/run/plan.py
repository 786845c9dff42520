"""A run, built: every component of one pipeline run as plain objects, no config.

:func:`g2m.run.build.build_run` turns the composed config into a :class:`RunPlan` (the one
place that reads it); :func:`g2m.run.pipeline.execute` runs the plan. Models whose sizes
depend on the data (the teacher GNN, the student MLP, an extra stage's model) are kept as
factories here and built by :func:`g2m.run.build.build_models` as soon as the graph is
loaded, before any stage trains.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from torch import nn

from g2m.data.source import DataLocation, GraphSource
from g2m.data.splits import SplitProtocol
from g2m.losses.base import DistillationObjective
from g2m.run.ensemble import TeacherEnsemble
from g2m.run.extra import ExtraStage
from g2m.run.settings import StageSchedule, StudentSettings, TrainerSettings
from g2m.run.store import ArtifactStore


@dataclass(frozen=True)
class RunNames:
    """What the run is called in metrics.json, the summary and the student's provenance."""

    dataset: str
    split: str
    setting: str
    teacher: str
    student: str
    loss: str
    tag: str | None = None


@dataclass(frozen=True)
class TeacherPlan:
    """The teacher stage: ``model(in_channels=F, out_channels=C)`` builds the GNN; or, for
    ``teacher=ensemble``, ``ensemble`` combines trained teachers and nothing is trained
    (``model`` and ``schedule`` are None)."""

    model: Callable[..., nn.Module] | None
    self_loops: bool
    schedule: StageSchedule | None
    artifact: Path | None
    ensemble: TeacherEnsemble | None = None


@dataclass(frozen=True)
class StudentPlan:
    """The student stage: ``model(in_channels=F, out_channels=C)`` builds the MLP."""

    model: Callable[..., nn.Module]
    settings: StudentSettings


@dataclass
class RunPlan:
    """Every component of a run (see the module docstring).

    Attributes:
        names: the run's names. seed: the run's seed (split, initialisation, shuffling).
        source: the dataset loader. location: the cache and the local data folder.
        split: the split protocol. held_out_fraction: the inductive setting's hold-out.
        teacher, student: their stages. objective: the distillation objective.
        stages: the extra stages the objective declared, in order.
        trainer: the Trainer settings every stage shares.
        logger: ``logger(save_dir)`` makes the run's Lightning logger; None for none.
        config: the resolved config, written as ``config.yaml`` and logged.
        store: where trained teachers and extra-stage artifacts are shared between runs
            (:mod:`g2m.run.store`); None: every run trains its own.
        identity: the config that determines each stored artifact besides the data, the
            split and the seed: ``teacher``, ``trainer`` and one entry per extra stage.
        threads: torch's CPU threads for this run (None: torch's default).
        overwrite: clear a run directory an earlier, different config wrote
            (:mod:`g2m.run.rundir`) instead of refusing it.
        baseline: also train the student MLP on labels only and compare
            (:mod:`g2m.run.baseline`).
    """

    names: RunNames
    seed: int
    source: GraphSource
    location: DataLocation
    split: SplitProtocol
    held_out_fraction: float
    teacher: TeacherPlan
    student: StudentPlan
    objective: DistillationObjective
    stages: list[ExtraStage]
    trainer: TrainerSettings
    logger: Callable[[str], Any] | None
    config: dict[str, Any]
    store: ArtifactStore | None = None
    identity: dict[str, Any] | None = None
    threads: int | None = None
    overwrite: bool = False
    baseline: bool = False
