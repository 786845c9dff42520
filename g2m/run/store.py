"""A content-addressed store of trained stage artifacts, shared by runs and sweeps.

A teacher (or an extra stage's artifact, such as VQGraph's codebook) is determined by what
it was trained on and how: the graph's content, the split, the seed, the stage's config, the
Trainer's device and precision, the selection rule and g2m's version. :func:`artifact_key`
hashes exactly that into a key; a run that needs a teacher first looks for it under its key
in the store (``$G2M_STORE_DIR``, default ``~/.cache/g2m/store``) and trains it only when it
is not there, so a sweep over objectives trains each (dataset, split, seed) teacher once.

Two runs that need the same missing artifact at once do not both train it: the first holds
the key's file lock while it trains and saves (atomically, :mod:`g2m.io`); the second waits
for the lock and then finds the finished file. A run links the stored file into its own run
directory (``teacher.pt``: a hard link where the file systems allow, else a copy), so a run
directory still holds everything needed to distil from it again. ``store=false`` turns the
store off.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import torch
from filelock import FileLock

from g2m.io import atomic_json, atomic_write

log = logging.getLogger("g2m")

STORE_DIR_ENV = "G2M_STORE_DIR"


def default_store_dir() -> Path:
    """``$G2M_STORE_DIR``, or ``~/.cache/g2m/store``."""
    env = os.environ.get(STORE_DIR_ENV)
    return Path(env).expanduser() if env else Path.home() / ".cache" / "g2m" / "store"


def tensor_digest(*tensors: torch.Tensor | None) -> str:
    """SHA-256 of the tensors' dtypes, shapes and bytes (None counts as absent)."""
    digest = hashlib.sha256()
    for tensor in tensors:
        if tensor is None:
            digest.update(b"none")
            continue
        tensor = tensor.detach().contiguous().cpu()
        digest.update(f"{tensor.dtype}{tuple(tensor.shape)}".encode())
        if tensor.numel():  # hashed in place: a products-size graph is GBs, no copy of it
            digest.update(tensor.reshape(-1).view(torch.uint8).numpy())
    return digest.hexdigest()


def artifact_key(parts: dict[str, Any]) -> str:
    """A short hex key for everything that determines an artifact (JSON-able values)."""
    text = json.dumps(parts, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:24]


class ArtifactStore:
    """Artifacts by kind and key: ``<root>/<kind>/<key>.pt`` with a ``<key>.json`` beside it
    saying what it is and which run trained it."""

    def __init__(self, root: Path):
        self.root = Path(root)

    def path(self, kind: str, key: str) -> Path:
        return self.root / kind / f"{key}.pt"

    @contextlib.contextmanager
    def reserved(self, kind: str, key: str) -> Iterator[Path]:
        """Hold ``key``'s lock (waiting while another run holds it); yields the file path."""
        path = self.path(kind, key)
        path.parent.mkdir(parents=True, exist_ok=True)
        lock = FileLock(str(path.with_suffix(".lock")))
        try:
            lock.acquire(timeout=0)
        except TimeoutError:
            log.info("Waiting for another run that trains this %s (store key %s)", kind, key)
            lock.acquire()
        try:
            yield path
        finally:
            lock.release()

    def describe(self, kind: str, key: str, about: dict[str, Any]) -> None:
        atomic_json(about, self.path(kind, key).with_suffix(".json"))


def link_into(source: Path, target: Path) -> None:
    """``target`` becomes a hard link to ``source`` (a copy across file systems)."""
    if target.exists():
        return
    target.parent.mkdir(parents=True, exist_ok=True)
    try:
        os.link(source, target)
    except OSError:
        atomic_write(target, lambda tmp: shutil.copyfile(source, tmp))
