"""Graphs, splits and raw-file staging."""

from g2m.data.catalog import available, load_graph
from g2m.data.sources import DatasetUnavailableError, default_cache_dir
from g2m.data.splits import NodeSplit, make_split, observed_subgraph

__all__ = [
    "DatasetUnavailableError",
    "NodeSplit",
    "available",
    "default_cache_dir",
    "load_graph",
    "make_split",
    "observed_subgraph",
]
