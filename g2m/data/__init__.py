"""Graphs in: dataset loaders over one interface, input checks, splits and raw-file staging.

========================  ==========================================================
:mod:`.source`            :class:`GraphSource` (the loaders' interface), :class:`LoadedGraph`
:mod:`.files`             a user's ``.pt``/``.npz`` file; the benchmarks' SparseGraph files
:mod:`.pyg`               any ``torch_geometric.datasets`` class
:mod:`.ogb_nodes`         OGB node-property graphs (``ogb`` package)
:mod:`.memory`            a graph passed in Python (``g2m.distill``)
:mod:`.synthetic`         CSBM graphs
:mod:`.checks`            what every graph passes through before training
:mod:`.splits`            split protocols and the inductive hold-out
:mod:`.staging`           the cache, ``$G2M_DATA_DIR`` and file locks
========================  ==========================================================
"""

from g2m.data.source import DataLocation, GraphSource, LoadedGraph
from g2m.data.splits import NodeSplit, SplitProtocol, make_split, observed_subgraph
from g2m.data.staging import DatasetUnavailableError, default_cache_dir

__all__ = [
    "DataLocation",
    "DatasetUnavailableError",
    "GraphSource",
    "LoadedGraph",
    "NodeSplit",
    "SplitProtocol",
    "default_cache_dir",
    "make_split",
    "observed_subgraph",
]
