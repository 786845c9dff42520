"""What ``python -m g2m.train`` checks before Hydra starts, so that bad input is one line,
exit status 2, and nothing written.

Hydra creates the run directory (``.hydra/``, ``train.log``) before the run's own code
starts, reports an unknown option with exit status 1 and a refused override with several
lines. So the command line is checked first, with the same compose API and the same
:func:`g2m.run.build.build_run` a run uses — which import neither Lightning nor PyG, so an
error comes back in about two seconds:

- the keys a stage sets itself (``trainer.max_epochs``, ``trainer.callbacks``, ...), which
  Hydra would refuse or Lightning would get twice;
- every option of every config group named (each value of a sweep too);
- keys that moved (``dataset.split`` is the ``split`` group now);
- the composed config and every component built from it (for a sweep, its first run);
- a sweep asked to run on several devices;
- a run directory that holds another config's run (:mod:`g2m.run.rundir`).

Hydra's own flags (``--help``, ``--cfg``, ``--info``, ...) skip the check.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from pathlib import Path

from g2m.errors import ConfigError, G2MError

CONFIGS = Path(__file__).resolve().parents[1] / "configs"
GROUPS = ("dataset", "split", "teacher", "student", "loss", "setting", "trainer", "logger")
HYDRA_FLAGS = {
    "--help", "-h", "--hydra-help", "--version", "--cfg", "-c", "--resolve", "--package",
    "-p", "--info", "-i", "--shell-completion", "-sc", "--config-path", "-cp",
    "--config-name", "-cn", "--config-dir", "-cd", "--experimental-rerun",
}  # fmt: skip
MULTIRUN_FLAGS = {"-m", "--multirun"}
PLACEHOLDER_FEATURES = 8
# Trainer arguments each stage sets itself (g2m.lit.fit.fit_and_test)
STAGE_OWNED = {
    "max_epochs": "teacher.max_epochs, student.max_epochs (codebook.max_epochs with loss=vq)",
    "min_epochs": "teacher.patience, student.patience (early stopping on validation accuracy)",
    "max_steps": "teacher.max_epochs, student.max_epochs",
    "min_steps": "teacher.patience, student.patience",
    "callbacks": "g2m's own selection, checkpoint and progress callbacks",
    "logger": "the logger group (logger=csv|tensorboard|wandb|none)",
    "default_root_dir": "hydra.run.dir (the run directory)",
    "enable_checkpointing": "g2m's own best/last checkpoints (checkpoints/<stage>/)",
    "num_sanity_val_steps": "g2m itself (0: every stage validates from its first epoch)",
}
MOVED = {
    "dataset.split": "splits are a group of their own: split=cpf|random|ratio|masks|public|...",
    "dataset.train_per_class": "split.train_per_class",
    "dataset.val_per_class": "split.val_per_class",
    "dataset.val_size": "split.val_size",
    "dataset.test_size": "split.test_size",
}


def options(group: str) -> list[str]:
    return sorted(p.stem for p in (CONFIGS / group).glob("*.yaml"))


def check_keys(overrides: Sequence) -> None:
    """Refuse keys a stage owns and keys that moved, naming where they live now."""
    for override in overrides:
        key = override.key_or_group
        owned = key.removeprefix("trainer.") if key.startswith("trainer.") else None
        if owned in STAGE_OWNED:
            raise ConfigError(
                f"trainer.{owned} is set by each stage, not for the Trainer as a whole: use "
                f"{STAGE_OWNED[owned]}."
            )
        if key in MOVED:
            raise ConfigError(f"{key} has moved: {MOVED[key]}.")


def check_options(overrides: Sequence) -> None:
    """Every option named for a config group (every value of a sweep) exists."""
    for override in overrides:
        group = override.key_or_group
        if group not in GROUPS or override.is_hydra_override() or override.is_delete():
            continue
        values = (
            list(override.sweep_string_iterator())
            if override.is_sweep_override()
            else [override.get_value_element_as_str()]
        )
        for value in values:
            if value not in options(group):
                raise ConfigError(
                    f"{group}={value} is not an option of the {group} group; the options are: "
                    f"{', '.join(options(group))}."
                )


def first_run(overrides: Sequence) -> list[str]:
    """The overrides of a sweep's first run (each sweep's first value)."""
    chosen = []
    for override in overrides:
        if override.is_sweep_override():
            first = next(iter(override.sweep_string_iterator()))
            chosen.append(f"{override.get_key_element()}={first}")
        else:
            chosen.append(override.input_line)
    return chosen


def preflight(argv: Sequence[str]) -> None:
    """Raise :class:`G2MError` for a command line ``python -m g2m.train`` would fail on."""
    from hydra.core.override_parser.overrides_parser import OverridesParser
    from hydra.errors import HydraException

    from g2m.api import compose_config, one_line
    from g2m.run.build import RunModels, build_run
    from g2m.run.rundir import check_run_dir

    args = list(argv)
    if any(a.split("=", 1)[0] in HYDRA_FLAGS for a in args):
        return
    multirun = any(a in MULTIRUN_FLAGS for a in args)
    try:
        overrides = OverridesParser.create().parse_overrides(
            [a for a in args if not a.startswith("-")]
        )
        check_keys(overrides)
        check_options(overrides)
        runs = first_run(overrides) if multirun else [o.input_line for o in overrides]
    except HydraException as err:  # a malformed override, or a sweep Hydra must expand
        if "ConfigLoader" in str(err):  # glob(): only Hydra can list the options
            return
        raise ConfigError(one_line(str(err))) from err
    cfg, run_dir = compose_config(runs)
    plan = build_run(cfg)
    if not multirun:  # before Hydra rewrites .hydra/config.yaml in it
        check_run_dir(Path(run_dir), plan.config, plan.overwrite)
    # every model built once for placeholder sizes: the data's sizes come later, but a wrong
    # width, norm or head count fails now
    RunModels(plan, num_features=PLACEHOLDER_FEATURES, num_classes=2).check()
    if multirun and plan.trainer.devices > 1:
        raise ConfigError(
            f"trainer.devices={plan.trainer.devices} cannot be combined with -m: DDP starts "
            "its ranks by rerunning the command; run each configuration as its own command "
            "(a shell loop over seeds works)."
        )


def preflight_or_exit(argv: Sequence[str]) -> None:
    """:func:`preflight`, a failure printed as one ``g2m: error:`` line, exit status 2."""
    from g2m.cli import USER_ERROR_EXIT, one_line_error

    try:
        preflight(argv)
    except G2MError as err:
        print(f"g2m: error: {one_line_error(err)}", file=sys.stderr)
        sys.exit(USER_ERROR_EXIT)
