"""Every shipped YAML composes with the real config and builds what it describes."""

from __future__ import annotations

import inspect
from pathlib import Path

import lightning.pytorch as pl
import pytest
import torch
from hydra.utils import get_object
from omegaconf import DictConfig, OmegaConf

import g2m
from g2m.data.source import GraphSource
from g2m.data.splits import SplitProtocol
from g2m.lit.distributed import single_device, student_trainer_kwargs
from g2m.models import GNNTeacher
from g2m.run.build import build_node, build_run
from tests.conftest import compose_config

CONFIGS = Path(g2m.__file__).parent / "configs"


def options(group: str) -> list[str]:
    return sorted(p.stem for p in (CONFIGS / group).glob("*.yaml"))


def test_every_group_has_options():
    for group in ("dataset", "split", "teacher", "student", "loss", "setting", "trainer"):
        assert options(group), group


REQUIRED = {"pyg": ["dataset.cls=KarateClub"], "file": ["dataset.path=graph.pt"]}
REQUIRED["ogb"] = ["dataset.name=ogbn-arxiv"]
REQUIRED["ensemble"] = ["teacher.members=[a/teacher.pt,b/teacher.pt]"]  # tests/test_ensemble.py


@pytest.mark.parametrize("option", options("dataset"))
def test_dataset_configs_build_a_graph_source(option, tiny_graph):
    cfg = compose_config([f"dataset={option}", *REQUIRED.get(option, [])])
    source = build_node(
        cfg.dataset, "dataset", **({"data": tiny_graph} if option == "memory" else {})
    )
    assert isinstance(source, GraphSource)
    assert source.name == cfg.dataset.name
    if option not in REQUIRED and option != "memory":
        assert source.name == option


@pytest.mark.parametrize(
    ("option", "split"),
    [
        ("cora", "cpf"),
        ("cora-planetoid", "public"),
        ("cora-geom-gcn", "geom-gcn"),
        ("amazon-photo", "random"),
        ("texas", "geom-gcn"),
        ("ogbn-arxiv", "ogb"),
    ],
)
def test_a_dataset_chooses_its_default_split_and_the_command_line_wins(option, split):
    assert compose_config([f"dataset={option}"]).split.name == split
    assert compose_config([f"dataset={option}", "split=ratio"]).split.name == "ratio"


@pytest.mark.parametrize("option", options("split"))
def test_split_configs_build_a_protocol(option):
    protocol = build_node(compose_config([f"split={option}"]).split, "split")
    assert isinstance(protocol, SplitProtocol) and protocol.name == option


@pytest.mark.parametrize("option", [o for o in options("teacher") if o != "ensemble"])
def test_teacher_configs_instantiate(option, tiny_graph):
    t = compose_config([f"teacher={option}"]).teacher
    gnn = build_node(t.model, "teacher.model", in_channels=8, out_channels=3)
    teacher = GNNTeacher(gnn, self_loops=t.self_loops)
    adj = teacher.adjacency(tiny_graph.edge_index, tiny_graph.num_nodes)
    assert teacher(tiny_graph.x, adj).shape == (120, 3)
    assert t.name == option and t.optim.lr > 0


@pytest.mark.parametrize("option", options("student"))
def test_student_configs_instantiate(option):
    s = compose_config([f"student={option}"]).student
    model = build_node(s.model, "student.model", in_channels=8, out_channels=3)
    assert model(torch.randn(4, 8)).shape == (4, 3)


@pytest.mark.parametrize("option", options("loss"))
def test_loss_configs_build_the_whole_run(option):
    plan = build_run(compose_config([f"loss={option}"]))
    assert plan.objective.name == plan.names.loss == option
    assert [s.name for s in plan.stages] == list(plan.objective.extra_stages)


@pytest.mark.parametrize("option", options("logger"))
def test_logger_configs_instantiate(option, tmp_path):
    node = compose_config([f"logger={option}"]).logger
    if option == "none":
        assert not node
        return
    logger = build_node(node, "logger", save_dir=str(tmp_path))
    assert logger is not None


@pytest.mark.parametrize("option", options("trainer"))
def test_trainer_configs_instantiate(option):
    config = dict(compose_config([f"trainer={option}"]).trainer)
    if config["accelerator"] == "gpu" and not torch.cuda.is_available():
        pytest.skip("GPU trainer config needs a CUDA device")
    config.pop("enable_progress_bar")
    for kwargs in (student_trainer_kwargs(config), single_device(config)):  # as the stages do
        trainer = pl.Trainer(logger=False, **kwargs)
        assert trainer.precision == config["precision"]
        if config["accelerator"] == "cpu":
            assert trainer.strategy.root_device.type == "cpu"


@pytest.mark.parametrize("option", options("setting"))
def test_setting_configs(option):
    setting = compose_config([f"setting={option}"]).setting
    assert setting.name == option and 0.0 <= setting.held_out_fraction < 1.0


@pytest.mark.parametrize("path", sorted((CONFIGS / "tuned").rglob("*.yaml")))
def test_tuned_configs_apply_to_their_dataset(path):
    dataset, model = path.stem.rsplit("_", 1)
    group = path.parent.name
    cfg = compose_config([f"dataset={dataset}", f"{group}={model}"])
    base = compose_config(["dataset=synthetic", f"{group}={model}"])
    changed = [key for key in cfg if key != "dataset" and cfg[key] != base[key]]
    assert changed, f"{path} changes nothing"


def target_nodes(node, path=""):
    """Every (key, node) of a config whose node names a ``_target_``."""
    if isinstance(node, DictConfig):
        if "_target_" in node:
            yield path, node
        for key in node:
            yield from target_nodes(node[key], f"{path}.{key}" if path else str(key))


def own_choices(group: str, option: str, key: str) -> set[str]:
    """The keys under ``key`` that a variant option sets itself: one whose defaults list
    builds on another option of its group (``student=mlp-res`` on ``mlp``) departs from that
    base on purpose; the base's own values are checked against the constructor."""
    raw = OmegaConf.load(CONFIGS / group / f"{option}.yaml")
    bases = [d for d in raw.get("defaults", []) if isinstance(d, str) and d in options(group)]
    head, _, rest = key.partition(".")
    if not bases or head != group:
        return set()
    node = OmegaConf.select(raw, rest) if rest else raw
    return {str(k) for k in node} if isinstance(node, DictConfig) else set()


def _g2m_nodes():
    """Every distinct g2m ``_target_`` node the shipped options compose to, with the keys
    its option chose on purpose (:func:`own_choices`)."""
    seen = {}
    for group in ("dataset", "split", "teacher", "student", "loss", "logger"):
        for option in options(group):
            # each option's own YAML: on the synthetic graph no per-dataset tuning applies
            base = [] if group == "dataset" else ["dataset=synthetic"]
            if option == "memory":
                continue  # needs a graph from Python; its node is checked above
            cfg = compose_config([*base, f"{group}={option}", *REQUIRED.get(option, [])])
            for key, node in target_nodes(cfg):
                if node._target_.startswith("g2m.") and key.split(".")[0] in (
                    group,
                    "split",
                    "codebook",
                ):
                    values = OmegaConf.to_container(node, resolve=True)
                    seen.setdefault(
                        (node._target_, repr(values)),
                        (f"{group}={option}:{key}", node, own_choices(group, option, key)),
                    )
    return [pytest.param(node, chosen, id=label) for label, node, chosen in seen.values()]


@pytest.mark.parametrize(("node", "chosen"), _g2m_nodes())
def test_constructor_defaults_agree_with_the_yaml(node, chosen):
    """Defaults live in YAML: a g2m constructor has no default for a key, or the same one
    (a variant option's own choices aside: its base option is checked)."""
    target = get_object(node._target_)
    signature = inspect.signature(target.__init__ if inspect.isclass(target) else target)
    values = OmegaConf.to_container(node, resolve=True)
    for name, parameter in signature.parameters.items():
        defaulted = parameter.default not in (inspect.Parameter.empty, None)
        if name in values and name not in chosen and defaulted:
            assert values[name] == parameter.default, (node._target_, name)
