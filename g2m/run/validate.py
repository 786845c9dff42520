"""Check a composed run config before anything is trained or written.

Hydra validates the *names* of config-group options; this module validates the *values* of
the keys every run uses, and reports all problems at once as a :class:`ConfigError`.
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


def _model_checks(prefix: str) -> list[Check]:
    return [
        (f"{prefix}.model.hidden_channels", _int(1), "an integer >= 1"),
        (f"{prefix}.model.num_layers", _int(1), "an integer >= 1"),
        (f"{prefix}.model.dropout", _number(lambda v: 0 <= v < 1), "a number in [0, 1)"),
        (f"{prefix}.optim.lr", _number(lambda v: v > 0), "a number > 0"),
        (f"{prefix}.optim.weight_decay", _number(lambda v: v >= 0), "a number >= 0"),
        (f"{prefix}.max_epochs", _int(1), "an integer >= 1"),
        (f"{prefix}.patience", _int(1), "an integer >= 1"),
    ]


CHECKS: list[Check] = [
    ("seed", _int(0), "an integer >= 0"),
    ("dataset.train_per_class", _int(1), "an integer >= 1"),
    ("dataset.val_per_class", _int(1), "an integer >= 1"),
    ("dataset.val_size", _int(1), "an integer >= 1"),
    ("dataset.test_size", _int(1), "an integer >= 1"),
    ("setting.held_out_fraction", _number(lambda v: 0 <= v < 1), "a number in [0, 1)"),
    *_model_checks("teacher"),
    *_model_checks("student"),
    ("student.batch_size", _int(1), "an integer >= 1 (or null: one full batch)"),
    ("student.distill_val", lambda v: isinstance(v, bool), "true or false"),
    ("loss.label_weight", _number(lambda v: 0 <= v <= 1), "a number in [0, 1]"),
    ("loss.temperature", _number(lambda v: v > 0), "a number > 0"),
    ("codebook.classifier", lambda v: v in ("linear", "graph"), "'linear' or 'graph'"),
    ("codebook.soft_labels", lambda v: v in ("teacher", "tokenizer"), "'teacher' or 'tokenizer'"),
    ("dataset.generator.num_nodes", _int(2), "an integer >= 2"),
    ("dataset.generator.num_classes", _int(2), "an integer >= 2"),
    ("dataset.generator.num_features", _int(1), "an integer >= 1"),
    ("dataset.generator.avg_degree", _number(lambda v: v > 0), "a number > 0"),
    ("dataset.generator.homophily", _number(lambda v: 0 <= v <= 1), "a number in [0, 1]"),
]


OPTIONAL = (
    "codebook.",
    "dataset.generator",
    "dataset.val_size",
    "dataset.test_size",
    "loss.",
    "student.batch_size",
)


def check_config(cfg: DictConfig) -> None:
    """Raise :class:`ConfigError` naming every key whose value is not acceptable."""
    problems = []
    for key, ok, expected in CHECKS:
        value = OmegaConf.select(cfg, key, default=None)
        if value is None and key.startswith(OPTIONAL):
            continue  # only some datasets / objectives have the key; null = full batch
        if not ok(value):
            problems.append(f"  {key}={value!r}: expected {expected}")
    if problems:
        raise ConfigError("Invalid configuration:\n" + "\n".join(problems))
