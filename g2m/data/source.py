"""What every dataset loader is: a :class:`GraphSource` that reads one graph, checked once.

A dataset config is a ``_target_`` node naming a :class:`GraphSource` subclass and its
arguments (``g2m/configs/dataset/*.yaml``); building it does no I/O. :meth:`GraphSource.load`
reads the graph (staging raw files through :class:`DataLocation`) and passes it through the
checks of :func:`g2m.data.checks.prepare_graph`, so every loader — a benchmark file, any PyG
dataset, an OGB graph, a user's file or a graph in memory — hands the pipeline the same
thing: a :class:`LoadedGraph`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from g2m.data.staging import default_cache_dir

if TYPE_CHECKING:  # PyG is imported when a graph is read, not when a run is built
    from torch_geometric.data import Data


@dataclass(frozen=True)
class DataLocation:
    """Where raw files come from and where g2m keeps its own copies.

    Attributes:
        cache_dir: g2m's dataset cache (PyG writes ``processed/`` here).
        data_dir: a read-only folder in PyG's raw layout to copy raw files from
            (``$G2M_DATA_DIR``), or None: download what is missing.
    """

    cache_dir: Path
    data_dir: Path | None = None

    @classmethod
    def from_paths(cls, cache_dir: str | None, data_dir: str | None) -> DataLocation:
        """``paths.cache_dir`` / ``paths.data_dir`` of the config (null: the defaults)."""
        cache = Path(cache_dir).expanduser() if cache_dir else default_cache_dir()
        return cls(cache, Path(data_dir).expanduser() if data_dir else None)


@dataclass
class LoadedGraph:
    """A checked graph (N nodes, E directed edge entries, F features, C classes).

    Attributes:
        data: ``x [N, F]`` float32, ``edge_index [2, E]`` undirected and coalesced without
            self-loops, ``y [N]`` class ids ``0..C-1`` (``-1``: unlabelled), and the
            dataset's own ``train_mask``/``val_mask``/``test_mask`` where it has them.
        name: the dataset's name in metrics and logs.
        classes: ``classes[c]`` is the dataset's own label of class ``c`` (kept in the
            student artifact when labels were remapped).
        notes: what the checks changed, one line each (also logged).
        class_names: ``class_names[c]`` names class ``c``, where the dataset names its
            classes (the gnn-benchmark files do); None otherwise.
    """

    data: Data
    name: str
    classes: list[str]
    notes: list[str] = field(default_factory=list)
    class_names: list[str] | None = None

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    @property
    def num_features(self) -> int:
        return int(self.data.x.size(1))


class GraphSource:
    """Base class of the dataset loaders.

    Args:
        name: the dataset's name in metrics, logs and the run directory.
        largest_component: keep only the largest connected component (the CPF protocol's
            preprocessing: Yang et al., WWW 2021).
        standardize_edges: make the edges undirected, coalesced and loop-free; false keeps
            them as the reader gives them (only their ids are checked), for a reader that is
            standard by construction or a graph meant to stay directed.

    Both are set in every dataset YAML (no defaults here: they live in the YAML).

    Subclasses implement :meth:`read`, the raw graph as a PyG ``Data``.
    """

    def __init__(self, name: str, largest_component: bool, standardize_edges: bool):
        self.name = str(name)
        self.largest_component = bool(largest_component)
        self.standardize_edges = bool(standardize_edges)

    def read(self, location: DataLocation) -> Data:
        raise NotImplementedError

    def load(self, location: DataLocation) -> LoadedGraph:
        """Read the graph and check it (:func:`g2m.data.checks.prepare_graph`)."""
        from g2m.data.checks import prepare_graph

        return prepare_graph(
            self.read(location),
            self.name,
            largest_component=self.largest_component,
            standardize_edges=self.standardize_edges,
        )

    def __repr__(self) -> str:
        return f"{type(self).__name__}(name={self.name!r})"
