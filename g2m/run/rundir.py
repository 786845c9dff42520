"""A run directory belongs to one config and one run at a time.

Rerunning a command into the same run directory resumes it: a finished run is reported
again, an interrupted stage continues from its last checkpoint. That is only right when the
directory was made by the *same* config, so the config a run wrote (``config.yaml``) is
compared with the one asked for, key by key, minus the keys that cannot change a result
(:data:`RESULT_NEUTRAL`: where files live, the logger, the store switch, threads, the progress
bar). A difference is refused with the keys that differ; ``overwrite=true`` clears what g2m
wrote there (never Hydra's ``.hydra/`` and ``train.log``) and starts afresh.

While a run writes into a directory it holds the directory's lock (``.g2m.lock``, an OS file
lock released when the process ends, however it ends); a second run into it is refused.
"""

from __future__ import annotations

import logging
import shutil
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import yaml
from filelock import FileLock, Timeout

from g2m.errors import ConfigError

log = logging.getLogger("g2m")

CONFIG_FILE = "config.yaml"
LOCK_FILE = ".g2m.lock"
HYDRA_OWNED = {".hydra", "train.log", LOCK_FILE}
# top-level keys (or dotted paths) whose value cannot change what a run computes
RESULT_NEUTRAL = (
    "paths",
    "logger",
    "store",
    "threads",
    "overwrite",
    "trainer.enable_progress_bar",
)
SHOWN_DIFFERENCES = 4


def flatten(config: Any, prefix: str = "") -> dict[str, Any]:
    """``{"a": {"b": 1}}`` -> ``{"a.b": 1}`` (lists stay values)."""
    if not isinstance(config, dict):
        return {prefix: config}
    flat: dict[str, Any] = {}
    for key, value in config.items():
        flat |= flatten(value, f"{prefix}.{key}" if prefix else str(key))
    return flat


def choices_first(keys: Iterable[str]) -> list[str]:
    """Sorted, the choices (``loss.name``, top-level ``seed``, ...) first: what a reader
    recognises."""
    return sorted(keys, key=lambda k: ("." in k and not k.endswith("name"), k))


def _neutral(key: str) -> bool:
    return any(key == n or key.startswith(n + ".") for n in RESULT_NEUTRAL)


def config_differences(stored: dict[str, Any], requested: dict[str, Any]) -> list[str]:
    """``key: stored -> requested`` for every result-relevant key that differs."""
    old, new = flatten(stored), flatten(requested)
    keys = choices_first(k for k in old.keys() | new.keys() if not _neutral(k))
    missing = "(absent)"
    return [
        f"{k}: {old.get(k, missing)!r} -> {new.get(k, missing)!r}"
        for k in keys
        if old.get(k, missing) != new.get(k, missing)
    ]


def written_by_g2m(run_dir: Path) -> list[Path]:
    """What a run wrote into ``run_dir`` (everything but Hydra's files and the lock)."""
    if not run_dir.is_dir():
        return []
    return [p for p in sorted(run_dir.iterdir()) if p.name not in HYDRA_OWNED]


def check_run_dir(run_dir: Path, config: dict[str, Any], overwrite: bool) -> list[Path]:
    """Refuse to resume or report ``run_dir`` for another config (see module docstring).
    Returns what ``overwrite`` will clear (:func:`clear`) once the run is ready to write;
    empty when the directory is new or holds this config's run. Changes nothing."""
    if run_dir.exists() and not run_dir.is_dir():
        raise ConfigError(f"the run directory {run_dir} is a file: choose another hydra.run.dir.")
    earlier = written_by_g2m(run_dir)
    if not earlier:
        return []
    stored_file = run_dir / CONFIG_FILE
    try:
        stored = yaml.safe_load(stored_file.read_text()) if stored_file.is_file() else None
    except (OSError, yaml.YAMLError):
        stored = None
    if isinstance(stored, dict):
        differences = config_differences(stored, config)
        if not differences:
            return []
        count = "1 key differs" if len(differences) == 1 else f"{len(differences)} keys differ"
        what = (
            f"holds a run of another config ({count}: "
            + "; ".join(differences[:SHOWN_DIFFERENCES])
            + ("; ..." if len(differences) > SHOWN_DIFFERENCES else "")
            + ")"
        )
    else:
        what = f"holds files of a run whose {CONFIG_FILE} is missing or unreadable"
    if overwrite:
        log.info("overwrite=true: %s %s; clearing it", run_dir, what)
        return earlier
    raise ConfigError(
        f"the run directory {run_dir} {what}; resuming it would report that run as this one. "
        "Choose another hydra.run.dir, or add overwrite=true to clear it and start afresh."
    )


def clear(paths: list[Path]) -> None:
    """Remove what :func:`check_run_dir` found to overwrite."""
    for path in paths:
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path)
        else:
            path.unlink(missing_ok=True)


@contextmanager
def locked_run_dir(run_dir: Path) -> Iterator[None]:
    """Hold ``run_dir``'s lock while the block runs; refuse if another run holds it."""
    run_dir.mkdir(parents=True, exist_ok=True)
    lock = FileLock(str(run_dir / LOCK_FILE))
    try:
        lock.acquire(timeout=0)
    except Timeout:
        raise ConfigError(
            f"another g2m run is writing into {run_dir} now: wait for it to finish, or "
            "choose another hydra.run.dir."
        ) from None
    try:
        yield
    finally:
        lock.release()
