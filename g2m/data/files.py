"""Graphs from files: a user's own ``.pt`` / ``.npz``, and the benchmarks' SparseGraph files.

Accepted formats (N nodes, F features, E edges):

``.pt`` (``torch.save``)
    a PyG ``Data``, or a dict of tensors, with ``x [N, F]``, ``edge_index [2, E]``, ``y [N]``
    and optionally ``train_mask`` / ``val_mask`` / ``test_mask`` (``[N]`` or ``[N, K]``) and
    ``class_names`` (a list: the name of each label id).
    Read with ``weights_only=True``: no pickled code runs.
``.npz`` (``numpy.savez``)
    the same keys as arrays; or a sparse form: features as ``attr_data``, ``attr_indices``,
    ``attr_indptr``, ``attr_shape`` (CSR) and the graph as the CSR adjacency ``adj_data``,
    ``adj_indices``, ``adj_indptr``, ``adj_shape`` in place of ``edge_index``; ``labels``
    may stand for ``y``. The sparse form is Shchur et al.'s gnn-benchmark "SparseGraph"
    file, which CPF (Yang et al., WWW 2021), GLNN, NOSMOG and VQGraph load Cora, CiteSeer
    and the Amazon graphs from.

:class:`GraphFile` reads a user's file where it is (``dataset=file dataset.path=...``);
:class:`BenchmarkFile` finds a benchmark file in PyG's raw layout, copied from
``$G2M_DATA_DIR`` into g2m's cache or downloaded from its ``url``.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from g2m.data.source import DataLocation, GraphSource
from g2m.data.staging import fetch_with_fallback, stage_raw_files
from g2m.errors import DataError

log = logging.getLogger("g2m")

if TYPE_CHECKING:
    import scipy.sparse as sp
    from torch_geometric.data import Data

FORMATS = (".pt", ".pth", ".npz")
CSR_KEYS = ("data", "indices", "indptr", "shape")
SPARSE_GRAPH_KEYS = tuple(f"{p}_{k}" for p in ("adj", "attr") for k in CSR_KEYS) + ("labels",)
GRAPH_KEYS = ("x", "edge_index", "y", "train_mask", "val_mask", "test_mask", "class_names")


def _csr(arrays: Any, prefix: str) -> sp.csr_matrix:
    import scipy.sparse as sp

    parts = [arrays[f"{prefix}_{k}"] for k in CSR_KEYS[:3]]
    return sp.csr_matrix(tuple(parts), shape=tuple(arrays[f"{prefix}_shape"]))


def _has_csr(keys: Any, prefix: str) -> bool:
    return all(f"{prefix}_{k}" in keys for k in CSR_KEYS)


def graph_from_arrays(arrays: Any, path: Path) -> Data:
    """A ``Data`` from the arrays of an ``.npz`` (dense keys or the SparseGraph form)."""
    from torch_geometric.data import Data

    keys = set(arrays.files)
    if _has_csr(keys, "adj"):
        adj = _csr(arrays, "adj").tocoo()
        edge_index = torch.from_numpy(np.vstack([adj.row, adj.col]).astype(np.int64))
    elif "edge_index" in keys:
        edge_index = torch.from_numpy(np.asarray(arrays["edge_index"]))
    else:
        raise DataError(
            f"{path} has no graph: expected an 'edge_index' [2, E] array or a CSR adjacency "
            f"({', '.join(f'adj_{k}' for k in CSR_KEYS)}); it has {sorted(keys)}."
        )
    if _has_csr(keys, "attr"):
        x = torch.from_numpy(_csr(arrays, "attr").toarray().astype(np.float32))
    elif "x" in keys:
        x = torch.from_numpy(np.asarray(arrays["x"]))
    else:
        raise DataError(f"{path} has no features: expected 'x' or the attr_* CSR arrays.")
    label_key = "y" if "y" in keys else "labels" if "labels" in keys else None
    if label_key is None:
        raise DataError(f"{path} has no labels: expected 'y' (or 'labels').")
    labels = np.asarray(arrays[label_key])
    y = torch.from_numpy(labels.astype(np.int64) if label_key == "labels" else labels)
    num_adj = _csr(arrays, "adj").shape[0] if _has_csr(keys, "adj") else x.size(0)
    if not num_adj == x.size(0) == y.size(0):
        raise DataError(
            f"{path}: adjacency has {num_adj} nodes but features have {x.size(0)} rows and "
            f"labels {y.size(0)} entries."
        )
    data = Data(x=x, edge_index=edge_index, y=y, num_nodes=x.size(0))
    for key in ("train_mask", "val_mask", "test_mask"):
        if key in keys:
            data[key] = torch.from_numpy(np.asarray(arrays[key]))
    if "class_names" in keys:  # gnn-benchmark files name their classes
        with contextlib.suppress(ValueError):  # an object array: not read without pickle
            data.class_names = [str(name) for name in arrays["class_names"]]
    return data


def read_npz(path: Path) -> Data:
    try:
        arrays = np.load(path, allow_pickle=False)
    except Exception as err:  # zipfile/pickle errors vary with the corruption
        raise DataError(f"{path} is not a readable .npz file ({err}).") from err
    with arrays:
        return graph_from_arrays(arrays, path)


def _pyg_safe_globals() -> list[type]:
    """The PyG classes a saved ``Data`` pickles (allowed by ``weights_only`` loading)."""
    from torch_geometric.data import Data
    from torch_geometric.data.data import DataEdgeAttr, DataTensorAttr
    from torch_geometric.data.storage import GlobalStorage

    return [Data, DataEdgeAttr, DataTensorAttr, GlobalStorage]


def read_pt(path: Path) -> Data:
    from torch_geometric.data import Data

    try:
        with torch.serialization.safe_globals(_pyg_safe_globals()):
            obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:
        raise DataError(
            f"{path} could not be read as a graph ({type(err).__name__}): save a PyG Data or "
            "a dict of tensors with torch.save (NumPy arrays: use an .npz file)."
        ) from err
    if isinstance(obj, Data):
        return obj
    if isinstance(obj, dict):
        unknown = sorted(set(obj) - set(GRAPH_KEYS))
        if unknown:
            raise DataError(f"{path}: unknown keys {unknown}; accepted: {list(GRAPH_KEYS)}.")
        return Data(**obj)
    raise DataError(
        f"{path} holds a {type(obj).__name__}; expected a PyG Data or a dict of tensors "
        f"with keys {list(GRAPH_KEYS)}."
    )


def read_graph_file(path: Path) -> Data:
    """The raw graph in ``path`` (``.pt``/``.pth`` or ``.npz``; see the module docstring)."""
    path = Path(path)
    if path.suffix not in FORMATS:
        raise DataError(
            f"{path}: unsupported graph file type '{path.suffix}'; accepted: {', '.join(FORMATS)} "
            "(a PyG Data or a dict of tensors saved with torch.save, or numpy.savez arrays)."
        )
    if not path.is_file():
        raise DataError(f"Graph file not found: {path}")
    return read_npz(path) if path.suffix == ".npz" else read_pt(path)


class GraphFile(GraphSource):
    """A user's graph file, read where it is (never copied into the cache).

    Args:
        name: the dataset's name in metrics and logs.
        path: the file (absolute, or relative to the directory g2m was started in).
        options: ``largest_component``, ``standardize_edges`` (:class:`GraphSource`).
    """

    def __init__(self, name: str, path: str, **options: bool):
        super().__init__(name, **options)
        if not path:
            raise DataError("dataset=file needs dataset.path: a .pt or .npz graph file.")
        self.path = Path(path).expanduser()

    def read(self, location: DataLocation) -> Data:
        return read_graph_file(self.path)


class BenchmarkFile(GraphSource):
    """A benchmark graph file at ``path`` in PyG's raw layout (e.g. ``CPF_npz/cora.npz``):
    copied from ``$G2M_DATA_DIR`` into the cache, or downloaded from ``url``.

    Args:
        name: the dataset's name in metrics and logs.
        path: the file's path relative to the data folder (and to the cache).
        url: where to download it from when no local copy exists.
        sha256: the file's known SHA-256 (None: unchecked). A cached copy with other
            contents (another dataset's file under this name, a truncated download) is
            replaced from the local folder or the URL; a source with other contents is
            refused.
        options: ``largest_component``, ``standardize_edges`` (:class:`GraphSource`).
    """

    def __init__(self, name: str, path: str, url: str, sha256: str | None = None, **options: bool):
        super().__init__(name, **options)
        self.path, self.url, self.sha256 = str(path), str(url), sha256

    def read(self, location: DataLocation) -> Data:
        target = location.cache_dir / self.path

        def fetch() -> None:
            from torch_geometric.data import download_url

            if not target.is_file():
                download_url(self.url, str(target.parent), log=False)

        def load() -> Data:
            fetch()
            if self.sha256 is not None and file_sha256(target) != self.sha256:
                log.warning(
                    "The cached %s is not the known '%s' file (SHA-256 differs); staging it again.",
                    target,
                    self.name,
                )
                target.unlink()
                stage_raw_files([self.path], location.cache_dir, location.data_dir)
                try:
                    fetch()
                except OSError as err:  # offline: urllib's URLError is an OSError
                    raise DataError(
                        f"Dataset '{self.name}': the cached {target} was not the known file "
                        "(SHA-256 differs: truncated, or another dataset's file) and was "
                        f"removed; no original could be staged or downloaded ({err}). Put the "
                        f"original {self.path} under $G2M_DATA_DIR or the cache and run again."
                    ) from err
                if file_sha256(target) != self.sha256:
                    target.unlink()
                    raise DataError(
                        f"Dataset '{self.name}': {self.path} from "
                        f"{location.data_dir or self.url} is not the known file (SHA-256 "
                        f"{self.sha256[:12]}...): put the original {self.path} there."
                    )
            return read_graph_file(target)

        return fetch_with_fallback(
            self.name, [self.path], location.cache_dir, location.data_dir, load
        )


def file_sha256(path: Path) -> str:
    """SHA-256 of a file's bytes, read in 1 MiB blocks."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()
