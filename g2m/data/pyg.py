"""Any PyG dataset by config: ``dataset=pyg dataset.cls=Coauthor dataset.name=CS``.

:class:`PyGDataset` instantiates a class of :mod:`torch_geometric.datasets` (or any
``torch_geometric.data.Dataset`` subclass named by a dotted path) with ``root`` set to g2m's
cache and its own keyword arguments, and takes one of its graphs. Raw files follow the same
rules as every other loader (:mod:`g2m.data.staging`): PyG's ``download()`` is preceded by a
copy from ``$G2M_DATA_DIR`` (which mirrors PyG's raw layout, e.g. ``CS/raw/ms_academic_cs.npz``),
so a read-only local copy is used offline and never written to; a failed download names
the missing files and where to put them. Processing runs under the dataset's file lock.
"""

from __future__ import annotations

import importlib
import inspect
import logging
from pathlib import Path
from typing import TYPE_CHECKING, Any

from g2m.data.source import DataLocation, GraphSource
from g2m.data.staging import DatasetUnavailableError, dataset_lock, stage_raw_files, unavailable
from g2m.errors import ConfigError, DataError

if TYPE_CHECKING:
    from torch_geometric.data import Data

log = logging.getLogger("g2m")

EXAMPLES = "Coauthor, Amazon, WikiCS, Actor, HeterophilousGraphDataset, Planetoid, WebKB"


def resolve_dataset_class(cls: str) -> type:
    """``cls`` as a class: a name in :mod:`torch_geometric.datasets` or a dotted path."""
    from torch_geometric.data import Dataset

    module_name, _, attr = str(cls).rpartition(".")
    try:
        module = importlib.import_module(module_name or "torch_geometric.datasets")
        found = getattr(module, attr)
    except (ImportError, AttributeError):
        found = None
    if not (inspect.isclass(found) and issubclass(found, Dataset)):
        raise ConfigError(
            f"dataset.cls={cls!r} is not a dataset class of torch_geometric.datasets "
            f"(e.g. {EXAMPLES}), nor a dotted path to a torch_geometric.data.Dataset subclass."
        )
    return found


def _parameters(cls: type) -> tuple[set[str], bool]:
    """The keyword parameters of ``cls(...)`` and whether it takes ``**kwargs``."""
    params = inspect.signature(cls.__init__).parameters
    open_ended = any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values())
    return {n for n in params if n != "self"}, open_ended


def with_local_raw_files(cls: type, location: DataLocation) -> type:
    """``cls`` whose ``download()`` first copies its raw files from the local data folder."""
    cache, local = location.cache_dir, location.data_dir

    def download(self: Any) -> None:
        names = self.raw_file_names
        names = [names] if isinstance(names, str) else list(names)
        relative = Path(self.raw_dir).resolve().relative_to(cache.resolve())
        # the whole local raw folder: some classes read files beyond raw_file_names
        # (Planetoid's geom-gcn split files)
        if local is not None and (local / relative).is_dir():
            stage_raw_files([str(relative)], cache, local)
        missing = stage_raw_files([str(relative / name) for name in names], cache, local)
        if not missing:
            return
        try:
            cls.download(self)
        except Exception as err:  # urllib's URLError is an OSError; others vary by class
            raise unavailable(cls.__name__, missing, cache, local, err) from err

    return type(cls.__name__, (cls,), {"download": download, "__module__": cls.__module__})


# what a node-classification graph holds, as the catalog YAMLs' `expect` states it
SHAPE_FACTS = {
    "nodes": lambda data: data.num_nodes,
    "features": lambda data: data.x.size(1),
    "classes": lambda data: int(data.y.max()) + 1,
}


class PyGDataset(GraphSource):
    """One graph of a ``torch_geometric.datasets`` class.

    Args:
        cls: the class name in :mod:`torch_geometric.datasets` (``Coauthor``), or a dotted
            path to any ``torch_geometric.data.Dataset`` subclass.
        name: the dataset's name in metrics and logs; also passed as the class's ``name``
            argument when it has one (``Coauthor(root, name="CS")``) and ``kwargs`` does not
            set it.
        kwargs: further keyword arguments of the class (``root`` is g2m's cache).
        index: which graph of the dataset (node-classification datasets hold one).
        expect: ``{"nodes": N, "features": F, "classes": C}``, what a catalog dataset is known
            to hold (None: anything). A graph read from the cache or the data folder that
            differs (another dataset's raw files under this name) is refused before use.
        options: ``largest_component``, ``standardize_edges`` (:class:`GraphSource`).
    """

    def __init__(
        self,
        cls: str,
        name: str,
        kwargs: dict[str, Any] | None = None,
        index: int = 0,
        expect: dict[str, int] | None = None,
        **options: bool,
    ):
        super().__init__(name, **options)
        self.expect = dict(expect) if expect else None
        if self.expect and set(self.expect) - set(SHAPE_FACTS):
            raise ConfigError(
                f"dataset.expect: {sorted(set(self.expect) - set(SHAPE_FACTS))} are not shape "
                f"facts; expected some of {list(SHAPE_FACTS)}."
            )
        self.cls = resolve_dataset_class(cls)
        self.kwargs = dict(kwargs or {})
        self.index = int(index)
        accepted, open_ended = _parameters(self.cls)
        unknown = sorted(set(self.kwargs) - accepted) if not open_ended else []
        if unknown or "root" in self.kwargs:
            raise ConfigError(
                f"dataset.kwargs: {self.cls.__name__} takes {sorted(accepted - {'root'})}, not "
                f"{unknown or ['root']} (root is g2m's cache: set paths.cache_dir instead)."
            )
        self.takes_root = "root" in accepted
        if "name" in accepted and "name" not in self.kwargs:
            self.kwargs["name"] = self.name

    def read(self, location: DataLocation) -> Data:
        label = f"{self.cls.__name__}({', '.join(f'{k}={v!r}' for k, v in self.kwargs.items())})"
        if not self.takes_root:  # the data ships with the class (KarateClub, FakeDataset)
            dataset = self._instantiate(self.cls, label)
        else:
            staged = with_local_raw_files(self.cls, location)
            with dataset_lock(location.cache_dir, f"{self.cls.__name__}-{self.name}"):
                try:
                    dataset = self._instantiate(staged, label, root=str(location.cache_dir))
                except DataError:
                    own = location.cache_dir / str(self.kwargs.get("name", ""))
                    if not remove_unreadable_processed(own):
                        raise
                    dataset = self._instantiate(staged, label, root=str(location.cache_dir))
        if not 0 <= self.index < len(dataset):
            raise ConfigError(f"dataset.index={self.index}: {label} holds {len(dataset)} graphs.")
        if len(dataset) > 1:
            log.info(
                "%s: %d graphs; using graph %d (dataset.index)", label, len(dataset), self.index
            )
        data = dataset[self.index]
        if self.expect:
            self._check_shape(data, label, location)
        return data

    def _check_shape(self, data: Any, label: str, location: DataLocation) -> None:
        facts = {k: int(SHAPE_FACTS[k](data)) for k in self.expect}
        wrong = [
            f"{facts[k]:,} {k} (expected {v:,})" for k, v in self.expect.items() if facts[k] != v
        ]
        if wrong:
            raise DataError(
                f"{label} read from {location.cache_dir} has {', '.join(wrong)}: these are not "
                f"{self.name}'s files (another dataset's under its name?); remove "
                f"{location.cache_dir / str(self.kwargs.get('name', self.cls.__name__))} and, "
                "if the copy in G2M_DATA_DIR is also wrong, that one too, then run again."
            )

    def _instantiate(self, cls: type, label: str, **extra: Any) -> Any:
        try:
            return cls(**extra, **self.kwargs)
        except DatasetUnavailableError:
            raise
        except Exception as err:  # the classes' own checks: AssertionError, ValueError, ...
            raise DataError(f"{label} failed: {type(err).__name__}: {err}") from err


def remove_unreadable_processed(root: Path) -> list[Path]:
    """Remove the files under ``root``'s ``processed/`` folders that torch cannot read (a
    truncated or overwritten ``data.pt``), so that PyG processes the raw files again; returns
    them. Processed files are derived from the raw ones: nothing is lost. ``root`` is the
    dataset's own folder in the cache (``<cache>/<dataset.name>``; the whole cache for a
    class without a name), so other datasets' files are not read."""
    import torch

    removed = []
    for path in sorted(Path(root).glob("**/processed/*.pt")):
        try:
            torch.load(path, map_location="cpu", weights_only=False)
        except Exception as err:  # unpickling, zip and EOF errors alike
            log.warning("%s cannot be read (%s); processing the raw files again.", path, err)
            path.unlink()
            removed.append(path)
    return removed
