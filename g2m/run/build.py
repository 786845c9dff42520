"""The one place that reads the config: every component of a run, built from its node.

:func:`build_run` instantiates each ``_target_`` node of the composed config — the dataset
loader, the split protocol, the objective, the extra stages the objective declares, the
logger — and turns the rest into plain settings (:mod:`g2m.run.plan`). The teacher's and
the student's model nodes become factories, bound to the data's sizes as soon as the graph
is loaded (:class:`RunModels`). Below this module nothing sees the config: stage functions
take built objects and plain arguments. Every constructor checks its own arguments, so a
wrong value fails at the top of the run, before anything trains or is written, with the
config key in its message.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from hydra.errors import InstantiationException
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf
from torch import nn

from g2m.data.source import DataLocation, GraphSource, LoadedGraph
from g2m.data.splits import SplitProtocol
from g2m.errors import ConfigError, G2MError
from g2m.losses.base import DistillationObjective
from g2m.run.ensemble import TeacherEnsemble
from g2m.run.extra import ExtraStage
from g2m.run.plan import RunNames, RunPlan, StudentPlan, TeacherPlan
from g2m.run.settings import (
    StageSchedule,
    StudentSettings,
    TrainerSettings,
    deterministic_kernels,
    runs_on_gpu,
)
from g2m.run.store import ArtifactStore, default_store_dir
from g2m.run.validate import check_config

if TYPE_CHECKING:
    from torch_geometric.data import Data

    from g2m.models import GNNTeacher, MLPStudent


def _explain(key: str, err: Exception) -> G2MError:
    """A constructor's complaint as a one-line error that names the config key."""
    cause = err
    while isinstance(cause, InstantiationException) and cause.__cause__ is not None:
        cause = cause.__cause__
    if isinstance(cause, InstantiationException):  # Hydra's own (e.g. an unknown _target_)
        text = str(cause).splitlines()[0]
        return ConfigError(f"{key}: {text}")
    message = str(cause) if isinstance(cause, G2MError) else f"{type(cause).__name__}: {cause}"
    error_type = type(cause) if isinstance(cause, G2MError) else ConfigError
    return error_type(message if key in message else f"{key}: {message}")


class NodeFactory:
    """A config node to instantiate later, with the arguments only the data can supply
    (``in_channels``, ``save_dir``): its target is imported then, not when the run is built,
    so that building a run imports neither PyG nor Lightning. Errors name ``key``."""

    def __init__(self, node: DictConfig, key: str):
        if not isinstance(node, DictConfig) or "_target_" not in node:
            raise ConfigError(f"{key} must be a config node with a _target_ (got {node!r}).")
        self.node, self.key = OmegaConf.create(OmegaConf.to_container(node, resolve=True)), key

    def __call__(self, **kwargs: Any) -> Any:
        return build_node(self.node, self.key, **kwargs)


def build_node(node: DictConfig, key: str, **kwargs: Any) -> Any:
    """``hydra.utils.instantiate(node)`` (plain containers as arguments); a failing
    constructor becomes a :class:`G2MError` naming ``key``."""
    if not isinstance(node, DictConfig) or "_target_" not in node:
        raise ConfigError(f"{key} must be a config node with a _target_ (got {node!r}).")
    try:
        return instantiate(node, **kwargs, _convert_="all")
    except (
        InstantiationException,
        G2MError,
        ValueError,
        TypeError,
        AssertionError,
        ZeroDivisionError,
    ) as err:
        raise _explain(key, err) from err


def _without(node: DictConfig, *keys: str) -> DictConfig:
    return OmegaConf.create({k: v for k, v in node.items() if k not in keys})


def _schedule(cfg: DictConfig, stage: str) -> StageSchedule:
    node = cfg[stage]
    return StageSchedule(
        stage, node.optim.lr, node.optim.weight_decay, node.max_epochs, node.patience
    )


def build_teacher(cfg: DictConfig) -> TeacherPlan:
    """The teacher's plan: a GNN to train (``teacher.model``), or, when the config lists
    ``teacher.members``, an ensemble of trained teachers (:mod:`g2m.run.ensemble`)."""
    teacher = cfg.teacher
    if "members" in teacher.keys():  # noqa: SIM118 (`in` skips a missing ??? value)
        if OmegaConf.is_missing(teacher, "members"):
            raise ConfigError(
                f"teacher={teacher.name} needs its members: teacher.members=[a/teacher.pt,"
                "b/teacher.pt] (teacher artifacts of this dataset, split and seed)."
            )
        ensemble = TeacherEnsemble(
            members=list(teacher.members),
            combine=str(teacher.combine),
            temperature=teacher.temperature,
            weight_temperature=teacher.weight_temperature,
        )
        return TeacherPlan(model=None, self_loops=False, schedule=None, artifact=None,
                           ensemble=ensemble)  # fmt: skip
    return TeacherPlan(
        model=NodeFactory(teacher.model, "teacher.model"),
        self_loops=bool(teacher.self_loops),
        schedule=_schedule(cfg, "teacher"),
        artifact=Path(teacher.artifact) if teacher.artifact else None,
    )


def build_stages(cfg: DictConfig, objective: DistillationObjective) -> list[ExtraStage]:
    """The extra stages the objective declares, each built from its own config key."""
    stages = []
    for key in objective.extra_stages:
        if key not in cfg:
            raise ConfigError(
                f"loss={objective.name} needs the '{key}' stage, but the config has no '{key}' "
                "node (its loss YAML should pull one in through its defaults list)."
            )
        stage = build_node(cfg[key], key)
        if not isinstance(stage, ExtraStage) or stage.name != key:
            raise ConfigError(f"{key}._target_ must name an ExtraStage whose name is '{key}'.")
        stages.append(stage)
    return stages


def build_run(cfg: DictConfig, data: Data | None = None) -> RunPlan:
    """Every component of the run described by ``cfg`` (``data``: a graph passed in Python,
    for ``dataset=memory``)."""
    check_config(cfg)
    source = build_node(cfg.dataset, "dataset", **({"data": data} if data is not None else {}))
    if not isinstance(source, GraphSource):
        raise ConfigError("dataset._target_ must name a GraphSource (g2m.data.source).")
    if data is not None and not hasattr(source, "data"):
        raise ConfigError("a graph was passed in Python, so the dataset must be dataset=memory.")
    split = build_node(cfg.split, "split")
    if not isinstance(split, SplitProtocol):
        raise ConfigError("split._target_ must name a SplitProtocol (g2m.data.splits).")
    objective = build_node(_without(cfg.loss, "name"), "loss")
    teacher, student = cfg.teacher, cfg.student
    return RunPlan(
        names=RunNames(
            dataset=source.name,
            split=split.name,
            setting=str(cfg.setting.name),
            teacher=str(teacher.name),
            student=str(student.name),
            loss=str(cfg.loss.name),
            tag=str(cfg.tag) if cfg.get("tag") else None,
        ),
        seed=int(cfg.seed),
        source=source,
        location=DataLocation.from_paths(cfg.paths.cache_dir, cfg.paths.data_dir),
        split=split,
        held_out_fraction=float(cfg.setting.held_out_fraction),
        teacher=build_teacher(cfg),
        student=StudentPlan(
            model=NodeFactory(student.model, "student.model"),
            settings=StudentSettings(
                _schedule(cfg, "student"),
                student.batch_size,
                student.get("distill_val", True),
                student.get("steps_per_call", 1),
                bool(student.get("cuda_graph", False)),
            ),
        ),
        objective=objective,
        stages=build_stages(cfg, objective),
        trainer=TrainerSettings(trainer_kwargs(cfg.trainer), str(cfg.selection.on_tie)),
        logger=NodeFactory(cfg.logger, "logger") if cfg.logger else None,
        config=OmegaConf.to_container(cfg, resolve=True),
        store=build_store(cfg),
        identity=stored_identity(cfg, objective),
        threads=threads(cfg.get("threads")),
        overwrite=bool(cfg.get("overwrite", False)),
        baseline=bool(cfg.get("baseline", False)),
    )


def build_store(cfg: DictConfig) -> ArtifactStore | None:
    """The artifact store (``store=true``; ``paths.store_dir``, default ``~/.cache/g2m/store``)."""
    if not cfg.get("store", False):
        return None
    root = cfg.paths.get("store_dir")
    return ArtifactStore(Path(root).expanduser() if root else default_store_dir())


def stored_identity(cfg: DictConfig, objective: DistillationObjective) -> dict[str, Any]:
    """The config a stored teacher or extra-stage artifact depends on (its key's config part).

    The teacher: its whole config but the ``artifact`` path; the Trainer: the device it
    resolves to, the precision and determinism; the selection tie rule. An extra stage: its
    own config but the ``artifact`` path.
    """
    trainer = cfg.trainer
    gpu = runs_on_gpu(str(trainer.accelerator))
    identity = {
        "teacher": _plain(cfg.teacher, drop=("artifact",)),
        "trainer": {
            "device": "cuda" if gpu else "cpu",
            "precision": str(trainer.precision),
            "deterministic": deterministic_kernels(trainer.get("deterministic", False), gpu),
            "on_tie": str(cfg.selection.on_tie),
        },
    }
    for key in objective.extra_stages:
        identity[key] = _plain(cfg[key], drop=("artifact",))
    return identity


def trainer_kwargs(trainer: DictConfig) -> dict[str, Any]:
    """The ``trainer`` group as Trainer keyword arguments, ``deterministic`` resolved."""
    kwargs = OmegaConf.to_container(trainer, resolve=True)
    gpu = runs_on_gpu(str(kwargs.get("accelerator", "auto")))
    kwargs["deterministic"] = deterministic_kernels(kwargs.get("deterministic", False), gpu)
    return kwargs


def _plain(node: DictConfig, drop: tuple[str, ...] = ()) -> dict[str, Any]:
    values = OmegaConf.to_container(node, resolve=True)
    return {k: v for k, v in values.items() if k not in drop}


def threads(value: Any) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ConfigError(
            f"threads={value!r}: expected an integer >= 1 (or null: torch's default)."
        )
    return value


WEIGHT_BYTES = 4  # fp32 parameters


def refuse_huge_widths(factory: NodeFactory, num_features: int) -> None:
    """Refuse a model whose weights alone would not fit in memory, before building it (a
    width of 10**9 would otherwise allocate until the machine gives up)."""
    args = factory.node
    width, layers = args.get("hidden_channels"), args.get("num_layers", 2)
    if not isinstance(width, int) or not isinstance(layers, int) or width < 1 or layers < 1:
        return
    heads = args.get("heads", 1) if isinstance(args.get("heads", 1), int) else 1
    weights = (num_features * width + max(layers - 2, 0) * width * width * heads + width) * 4
    needed = weights * WEIGHT_BYTES
    budget = available_memory()
    if needed > budget:
        raise ConfigError(
            f"{factory.key}.hidden_channels={width} (with num_layers={layers}) would need about "
            f"{needed / 2**30:,.1f} GiB for its weights, gradients and optimiser state, and "
            f"{budget / 2**30:,.1f} GiB of memory is available; choose a smaller width."
        )


def available_memory() -> int:
    """Bytes of physical memory on this machine (a generous bound for a model's state)."""
    import os

    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        return 1 << 40


class RunModels:
    """The run's model factories bound to the loaded graph's sizes (F features, C classes).

    :meth:`check` builds every model once at the top of the run, so a wrong argument fails
    before anything trains; it runs under a forked RNG, leaving the run's random stream
    untouched. Each stage then builds its own fresh model right after it seeds, so the
    initial weights depend on the seed alone, whatever ran before.
    """

    def __init__(self, plan: RunPlan, num_features: int, num_classes: int):
        self.plan = plan
        self.num_features, self.num_classes = num_features, num_classes

    @classmethod
    def for_graph(cls, plan: RunPlan, graph: LoadedGraph) -> RunModels:
        return cls(plan, graph.num_features, graph.num_classes)

    def _gnn(self, **kwargs: Any) -> nn.Module:
        return self.plan.teacher.model(**kwargs)

    def teacher(self) -> GNNTeacher:
        from g2m.models import GNNTeacher

        if self.plan.teacher.model is None:
            raise ConfigError(f"teacher={self.plan.names.teacher} has no GNN to build.")
        gnn = self._gnn(in_channels=self.num_features, out_channels=self.num_classes)
        return GNNTeacher(gnn, self_loops=self.plan.teacher.self_loops)

    def student(self, extra_inputs: int = 0) -> MLPStudent:
        """A fresh student MLP over the node features and ``extra_inputs`` more columns."""
        width = self.num_features + extra_inputs
        return self.plan.student.model(in_channels=width, out_channels=self.num_classes)

    def distilled_student(self) -> MLPStudent:
        """The student the student stage trains: its input widened by every stage's columns."""
        return self.student(sum(stage.input_channels for stage in self.plan.stages))

    def build_stage(self, stage: ExtraStage) -> None:
        try:
            stage.build(
                self.num_features, self.num_classes, self._gnn, self.plan.teacher.self_loops
            )
        except (ValueError, TypeError, ZeroDivisionError, AssertionError) as err:
            raise _explain(stage.name, err) from err

    def check(self) -> None:
        for factory in (self.plan.teacher.model, self.plan.student.model):
            if factory is not None:
                refuse_huge_widths(factory, self.num_features)
        with torch.random.fork_rng(devices=[]):
            self.distilled_student()  # torch alone: fails before PyG is imported
            # an ensemble of trained teachers has no GNN to build
            teacher = None if self.plan.teacher.model is None else self.teacher()
            for stage in self.plan.stages:
                self.refuse_non_basic_teacher(stage, teacher)
                self.build_stage(stage)

    def refuse_non_basic_teacher(self, stage: ExtraStage, teacher: GNNTeacher | None) -> None:
        """An extra stage builds its own model from the teacher's GNN class (VQGraph's
        tokenizer: the same kind of convolution, other widths and depths), which only a PyG
        ``BasicGNN`` offers; the propagation teachers (APPNP, SGC, GCNII) do not, and a
        teacher ensemble (``teacher`` None) has no GNN at all."""
        from torch_geometric.nn.models.basic_gnn import BasicGNN

        names = self.plan.names
        if stage.teacher_gnn == "none":
            return
        if teacher is None:
            raise ConfigError(
                f"loss={names.loss} builds its {stage.name} stage from the teacher's GNN, and "
                f"teacher={names.teacher} has none: use one of the ensemble's teachers "
                "(teacher=sage, ...) for this loss."
            )
        gnn = teacher.gnn
        if stage.teacher_gnn == "basic" and not isinstance(gnn, BasicGNN):
            raise ConfigError(
                f"loss={names.loss} builds its {stage.name} stage from the teacher's GNN class, "
                f"which must be a PyG BasicGNN (teacher=sage, sage-root, gcn or gat); "
                f"teacher={names.teacher} ({type(gnn).__name__}) is not one."
            )
