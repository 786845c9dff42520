"""Checks of config values that no constructor makes, before anything is built or written.

Hydra validates the *names* of config-group options and the constructors of what the config
builds validate their own arguments (the student MLP, the objectives, the split protocols,
the stage schedules, the codebook stage). What is left is checked here, all problems at once,
as a :class:`ConfigError`: the run's seed, the inductive hold-out, and the teacher's sizes
(PyG's GNN constructors accept a zero width or depth and fail later, inside training, and
GAT divides by its head count).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from omegaconf import DictConfig, OmegaConf

from g2m.errors import ConfigError

Check = tuple[str, Callable[[Any], bool], str]


def _int(low: int) -> Callable[[Any], bool]:
    return lambda v: isinstance(v, int) and not isinstance(v, bool) and v >= low


def _number(test: Callable[[float], bool]) -> Callable[[Any], bool]:
    return lambda v: isinstance(v, int | float) and not isinstance(v, bool) and test(float(v))


CHECKS: list[Check] = [
    ("seed", lambda v: _int(0)(v) and v < 2**32, "an integer in [0, 2**32 - 1]"),
    ("setting.held_out_fraction", _number(lambda v: 0 <= v < 1), "a number in [0, 1)"),
    ("teacher.model.hidden_channels", _int(1), "an integer >= 1"),
    ("teacher.model.num_layers", _int(1), "an integer >= 1"),
    ("teacher.model.dropout", _number(lambda v: 0 <= v < 1), "a number in [0, 1)"),
    ("teacher.model.heads", _int(1), "an integer >= 1 (attention heads)"),
    # an EMA decay outside (0, 1) moves codes away from their nodes (decay=2: 1 of 16 used)
    ("codebook.decay", _number(lambda v: 0 < v < 1), "a number in (0, 1)"),
]
OPTIONAL = {"teacher.model.heads", "codebook.decay"}  # only some runs have the key
# not every teacher has these (SGC has no hidden layer): checked where the model has them
MODEL_SPECIFIC = {
    "teacher.model.hidden_channels",
    "teacher.model.num_layers",
    "teacher.model.dropout",
}
_ABSENT = object()


def check_config(cfg: DictConfig) -> None:
    """Raise :class:`ConfigError` naming every key whose value is not acceptable."""
    problems = []
    for key, ok, expected in CHECKS:
        value = OmegaConf.select(cfg, key, default=_ABSENT)
        if value is _ABSENT and key in MODEL_SPECIFIC:
            continue
        value = None if value is _ABSENT else value
        if value is None and key in OPTIONAL:
            continue
        if not ok(value):
            problems.append(f"  {key}={value!r}: expected {expected}")
    if problems:
        raise ConfigError("Invalid configuration:\n" + "\n".join(problems))
