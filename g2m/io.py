"""Atomic file writes and guarded reads. Torch only: the deployable student depends on this.

Every artifact is written to a temporary name in the target folder and renamed into place,
so a run killed at any moment never leaves a truncated file that a later run would load. The
file gets the mode any other tool would give it (``0o666`` less the umask), not the owner-only
mode of the temporary file, so that others on a shared machine can read results.
"""

from __future__ import annotations

import json
import os
import pickle
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from g2m.errors import ArtifactError, ArtifactNotFoundError


def atomic_write(path: Path, write: Callable[[Path], Any]) -> Path:
    """Call ``write(tmp_path)`` then rename to ``path`` (same filesystem, atomic)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        write(Path(tmp))
        os.chmod(tmp, 0o666 & ~current_umask())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


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
