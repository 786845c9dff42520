"""Atomic file writes and guarded reads. Torch only: the deployable student depends on this.

Every artifact is written to a temporary name in the target folder and renamed into place,
so a run killed at any moment never leaves a truncated file that a later run would load. The
file gets the mode any other tool would give it (``0o666`` less the umask), not the owner-only
mode of the temporary file, so that others on a shared machine can read results.
"""

from __future__ import annotations

import errno
import json
import os
import pickle
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from g2m.errors import (
    ArtifactError,
    ArtifactNotFoundError,
    DiskFullError,
    G2MError,
    OutputError,
)


def atomic_write(path: Path, write: Callable[[Path], Any]) -> Path:
    """Call ``write(tmp_path)`` then rename to ``path`` (same filesystem, atomic).

    A full disk (``OSError`` ENOSPC / EDQUOT, or the ``RuntimeError`` torch's zip writer
    raises instead, "unexpected pos") becomes one :class:`DiskFullError` naming the path and
    the space left; the temporary file is removed and whatever was at ``path`` stays.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        write(Path(tmp))
        os.chmod(tmp, 0o666 & ~current_umask())
        os.replace(tmp, path)
    except BaseException as err:
        Path(tmp).unlink(missing_ok=True)
        if is_disk_full(err):
            raise DiskFullError(
                f"could not write {path}: no space left on its disk ({free_space(path.parent)} "
                "free); nothing partial was left. Free some space and run the same command "
                "again (a training run resumes from its last checkpoint)."
            ) from err
        raise
    return path


DISK_FULL = (errno.ENOSPC, errno.EDQUOT)


def is_disk_full(err: BaseException) -> bool:
    """A full disk or quota, as the OS or torch's zip writer reports it."""
    if isinstance(err, OSError) and not isinstance(err, G2MError):
        return err.errno in DISK_FULL
    # torch.save reports a short write as "[enforce fail at inline_container.cc:...]
    # unexpected pos ..." (the errno is lost); PytorchStreamWriter may also say it failed
    text = str(err) if isinstance(err, RuntimeError) else ""
    return "unexpected pos" in text or "PytorchStreamWriter failed writing" in text


def free_space(folder: Path) -> str:
    try:
        return f"{shutil.disk_usage(folder).free / 2**20:,.1f} MiB"
    except OSError:
        return "unknown"


def check_output(path: Path, what: str = "output", folder: bool = False) -> Path:
    """Refuse, before any work is done, an output path that cannot be written.

    Args:
        path: the file (or, with ``folder``, the directory) a tool is about to write.
        what: how the user gave it, for messages (``"--out"``).
        folder: ``path`` is a directory to write into (created if missing), not a file.

    Raises:
        OutputError: ``path`` is a directory where a file goes (or a file where a directory
            goes), lies below a regular file, or its nearest existing folder is not writable.
    """
    path = Path(path)
    if not folder and path.is_dir():
        raise OutputError(f"{what} {path} is a directory; give the path of a file to write.")
    if folder and path.exists() and not path.is_dir():
        raise OutputError(
            f"{what} {path} is an existing file; give a directory to write into "
            "(a new one is created)."
        )
    existing = path if folder and path.is_dir() else path.parent
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if not existing.is_dir():
        raise OutputError(
            f"{what} {path} cannot be created: {existing} is a file, not a directory."
        )
    if not os.access(existing, os.W_OK | os.X_OK):
        raise OutputError(
            f"{what} {path} cannot be written: {existing} is read-only or not writable by you; "
            "choose a writable location."
        )
    return path


def write_output(path: Path, write: Callable[[Path], Any], what: str = "output") -> Path:
    """:func:`atomic_write` for a tool's output: the path is checked first
    (:func:`check_output`) and a failed write (a full disk, a folder put in the file's place
    meanwhile) becomes an :class:`OutputError`; either way nothing is left at ``path``."""
    check_output(path, what)
    try:
        return atomic_write(path, write)
    except OSError as err:
        if isinstance(err, G2MError):
            raise
        reason = err.strerror or str(err)
        raise OutputError(f"could not write {path} ({reason}); nothing was written there.") from err


def current_umask() -> int:
    """The process's umask (read by setting it and putting it back)."""
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def atomic_torch_save(obj: Any, path: Path) -> Path:
    return atomic_write(path, lambda tmp: torch.save(obj, tmp))


def atomic_json(obj: Any, path: Path) -> Path:
    return atomic_write(path, lambda tmp: tmp.write_text(json.dumps(obj, indent=2) + "\n"))


def read_torch_dict(path: Path, kind: str, weights_only: bool = True) -> dict[str, Any]:
    """``torch.load`` a dict artifact, with errors that name the file and what was expected.

    Args:
        path: the file. kind: what it should be, for messages ("g2m student artifact").
        weights_only: refuse pickled code (True for anything a user may hand us).
    """
    path = Path(path)
    if not path.is_file():
        raise ArtifactNotFoundError(f"{kind} not found: {path}")
    try:
        state = torch.load(path, map_location="cpu", weights_only=weights_only)
    except Exception as err:  # torch's messages run to many lines: say it in one
        if isinstance(err, pickle.UnpicklingError):
            reason = "not a torch.save file of plain tensors and values"
        else:
            lines = str(err).strip().splitlines()
            reason = f"{type(err).__name__}: {lines[0][:120]}" if lines else type(err).__name__
        raise ArtifactError(
            f"{path} is not a readable {kind} ({reason}); expected a file a g2m run wrote "
            "(ONNX and TorchScript exports are for other runtimes)."
        ) from err
    if not isinstance(state, dict):
        raise ArtifactError(f"{path} is not a {kind}.")
    return state
