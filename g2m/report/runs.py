"""Finished runs as ``g2m.report`` reads them: every ``metrics.json`` below the given folders.

A run whose ``metrics.json`` (or ``timings.json`` beside it) is unreadable, truncated, or
lacks what the report groups and averages on is skipped with one warning line naming the
file and why, so that one damaged run does not hide the others; only when no run is left is
the report refused.
"""

from __future__ import annotations

import json
import math
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from g2m.errors import DataError

GROUPED = ("dataset", "split", "setting", "tag", "seed")  # the run-level group fields
ACCURACIES = ("val_acc", "test_acc", "test_acc_ind", "test_acc_prod")
TIMED = ("wall_seconds", "teacher_inference_ms", "student_inference_ms")


class SkippedRun(Exception):
    """A run the report cannot use; the message says why."""


def warn_stderr(message: str) -> None:
    print(f"g2m.report: warning: {message}", file=sys.stderr)


def load_runs(dirs: list[Path], warn: Callable[[str], None] = warn_stderr) -> list[dict]:
    """Every usable run below ``dirs``: its metrics plus ``timings`` (from timings.json if
    present) and ``path``; each unusable one is passed to ``warn`` as one line.

    Raises:
        DataError: no ``metrics.json`` below ``dirs``, or none that can be reported.
    """
    found = [path for d in dirs for path in sorted(Path(d).rglob("metrics.json"))]
    where = ", ".join(map(str, dirs))
    if not found:
        raise DataError(f"no metrics.json under {where}")
    runs = []
    for path in found:
        try:
            runs.append(read_run(path))
        except SkippedRun as skipped:
            warn(f"skipped {path}: {skipped}")
    if not runs:
        raise DataError(
            f"no run to report: all {len(found)} metrics.json under {where} were skipped "
            "(see the warnings above); rerun or remove the damaged runs."
        )
    return runs


def read_run(path: Path) -> dict:
    """One run from its ``metrics.json``; :class:`SkippedRun` if it cannot be reported."""
    run = read_json(path)
    problem = metrics_problem(run)
    if problem:
        raise SkippedRun(problem)
    try:
        run["timings"] = read_timings(path.with_name("timings.json"), run)
    except SkippedRun as skipped:
        raise SkippedRun(f"timings.json beside it: {skipped}") from None
    run["path"] = str(path.parent)
    return run


def read_timings(path: Path, run: dict) -> dict:
    """The run's ``timings.json`` (``{}`` if it has none); :class:`SkippedRun` if unusable."""
    timings = read_json(path) if path.is_file() else {}
    if "wall_seconds" in run:  # runs written before timings.json existed
        timings.setdefault("wall_seconds", run["wall_seconds"])
    for field in TIMED:
        value = timings.get(field)
        if value is not None and not is_number(value):
            raise SkippedRun(f"'{field}' is not a finite number")
    return timings


def read_json(path: Path) -> Any:
    """A JSON file's object; :class:`SkippedRun` saying how it is unreadable."""
    try:
        text = path.read_text()
    except (OSError, UnicodeDecodeError) as err:
        reason = getattr(err, "strerror", None) or err
        raise SkippedRun(f"could not be read ({reason})") from err
    if not text.strip():
        raise SkippedRun("empty file")
    try:
        value = json.loads(text)
    except json.JSONDecodeError as err:
        where = f"line {err.lineno} column {err.colno}"
        raise SkippedRun(f"not valid JSON ({err.msg}, {where}; truncated?)") from None
    if not isinstance(value, dict):
        raise SkippedRun(f"a JSON {type(value).__name__}, not an object")
    return value


def metrics_problem(run: dict) -> str | None:
    """Why a parsed ``metrics.json`` cannot be grouped and averaged, or ``None``."""
    missing = [key for key in ("dataset", "setting", "seed", "student") if key not in run]
    if missing:
        return f"no {', '.join(repr(k) for k in missing)} (not a finished g2m run?)"
    for key in GROUPED:
        if not is_scalar(run.get(key)):
            return f"'{key}' is not a single value"
    for stage in ("teacher", "student", "baseline"):
        block = run.get(stage, {})
        if not isinstance(block, dict):
            return f"'{stage}' is not an object"
        if not is_scalar(block.get("name")) or not is_scalar(block.get("loss")):
            return f"'{stage}.name' or '{stage}.loss' is not a single value"
        for field in ACCURACIES:
            if field in block and not is_number(block[field]):
                return f"'{stage}.{field}' is not a finite number"
    gain = run.get("distillation_gain", {})
    if not isinstance(gain, dict) or not all(is_number(v) for v in gain.values()):
        return "'distillation_gain' is not an object of finite numbers"
    if "name" not in run["student"] or "val_acc" not in run["student"]:
        return "no 'student.name' or 'student.val_acc'"
    return None


def is_scalar(value: Any) -> bool:
    return value is None or isinstance(value, (str, int, float, bool))


def is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
