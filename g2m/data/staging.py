"""Where raw dataset files come from, and how they reach g2m's own cache.

PyG's dataset classes read ``<root>/<name>/raw/*`` and write ``processed/`` beside it. g2m
points them at its own cache directory and never at a user's data folder, which may be
read-only (the ``G2M_DATA_DIR`` convention: a folder in PyG's raw layout, e.g. a shared,
offline copy of the benchmarks). Files found there are copied into the cache first; files
found nowhere are left to PyG's (or our) download, and a failed download becomes a
:class:`DatasetUnavailableError` that names the missing files and where to put them.

Runs in parallel (``chains.sh``, a Hydra launcher, several seeds at once) share one cache.
PyG writes ``processed/`` with a plain ``torch.save``, so a second run could read a file the
first is still writing ("failed finding central directory"). Staging and loading therefore
hold a per-dataset file lock in the cache (:func:`dataset_lock`); the first run processes,
the others wait for it and then read the finished file.
"""

from __future__ import annotations

import contextlib
import errno
import logging
import os
import shutil
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import TypeVar

from filelock import FileLock

from g2m.errors import DataError
from g2m.io import atomic_write

log = logging.getLogger("g2m")

T = TypeVar("T")

DATA_DIR_ENV = "G2M_DATA_DIR"
CACHE_DIR_ENV = "G2M_CACHE_DIR"


class DatasetUnavailableError(DataError):
    """The raw files of a dataset are neither cached, nor local, nor downloadable."""


def default_cache_dir() -> Path:
    """g2m's dataset cache: ``$G2M_CACHE_DIR`` or ``~/.cache/g2m/datasets``."""
    env = os.environ.get(CACHE_DIR_ENV)
    return Path(env).expanduser() if env else Path.home() / ".cache" / "g2m" / "datasets"


@contextlib.contextmanager
def dataset_lock(cache_dir: Path, dataset: str) -> Iterator[None]:
    """Hold the lock that serialises staging and processing of ``dataset`` in ``cache_dir``.

    A cache that cannot be written (a read-only copy that already holds every file) is read
    without the lock: nothing can be staged or processed into it, so there is nothing to
    serialise, and a missing file then fails with the usual message.
    """
    try:
        cache_dir.mkdir(parents=True, exist_ok=True)
        lock = FileLock(str(cache_dir / f".{dataset}.lock"))
        lock.acquire()
    except OSError as err:
        if err.errno not in (errno.EACCES, errno.EROFS, errno.EPERM):
            raise
        log.info("The cache %s is read-only (%s); reading it without its lock.", cache_dir, err)
        yield
        return
    try:
        yield
    finally:
        lock.release()


def stage_raw_files(
    relative_paths: Sequence[str], cache_dir: Path, local_dir: Path | None
) -> list[str]:
    """Copy raw files from ``local_dir`` into ``cache_dir`` (same relative paths).

    Files already in the cache are kept. Returns the relative paths that are still missing
    from the cache afterwards (to be downloaded). The local folder is only ever read.
    """
    missing = []
    for rel in relative_paths:
        target = cache_dir / rel
        if target.is_file() and target.stat().st_size > 0:
            continue
        source = local_dir / rel if local_dir is not None else None
        if source is not None and source.is_file():
            # unique temporary name + atomic rename: a killed copy never looks complete,
            # and concurrent runs (a sweep) never share a half-written file
            atomic_write(target, lambda tmp, src=source: shutil.copyfile(src, tmp))
        elif source is not None and source.is_dir():  # a raw "file" that is a folder
            nested = [
                str(Path(rel) / p.relative_to(source)) for p in source.rglob("*") if p.is_file()
            ]
            missing += stage_raw_files(nested, cache_dir, local_dir)
        elif not target.is_dir():
            missing.append(rel)
    return missing


def fetch_with_fallback(
    dataset: str,
    relative_paths: Sequence[str],
    cache_dir: Path,
    local_dir: Path | None,
    load: Callable[[], T],
) -> T:
    """Stage local raw files, then call ``load`` (which may download what is missing).

    Both happen under :func:`dataset_lock`, so concurrent runs never see a half-processed
    dataset. A download failure (no network) is turned into an actionable error.
    """
    with dataset_lock(cache_dir, dataset):
        missing = stage_raw_files(relative_paths, cache_dir, local_dir)
        try:
            return load()
        except (OSError, ValueError) as err:  # urllib's URLError is an OSError
            if not missing:
                raise
            raise unavailable(dataset, missing, cache_dir, local_dir, err) from err


def unavailable(
    dataset: str, missing: Sequence[str], cache_dir: Path, local_dir: Path | None, err: Exception
) -> DatasetUnavailableError:
    """The actionable error for raw files that are neither local nor downloadable."""
    listing = "\n".join(f"  - {rel}" for rel in missing)
    where = (
        f"{local_dir} (from ${DATA_DIR_ENV})"
        if local_dir is not None
        else f"a folder you name in ${DATA_DIR_ENV}"
    )
    return DatasetUnavailableError(
        f"Dataset '{dataset}' is not available offline and could not be downloaded "
        f"({type(err).__name__}: {err}).\nMissing raw files (PyG raw layout):\n{listing}\n"
        f"Put them under {where}, or directly under the cache {cache_dir}, and run again."
    )
