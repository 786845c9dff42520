"""Reader for the gnn-benchmark ``.npz`` "SparseGraph" files used by the CPF protocol.

CPF (Yang et al., WWW 2021), GLNN (Zhang et al., ICLR 2022), NOSMOG and VQGraph all load
Cora, CiteSeer, Amazon-Photo and Amazon-Computers from these files (Shchur et al., 2018)
and *standardise* them: unweighted, undirected, no self-loops, largest connected component
only. Features stay raw (no row normalisation).

File keys: ``adj_{data,indices,indptr,shape}`` (CSR adjacency),
``attr_{data,indices,indptr,shape}`` (CSR features) and ``labels``.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import scipy.sparse as sp
import torch
from torch_geometric.data import Data
from torch_geometric.transforms import LargestConnectedComponents
from torch_geometric.utils import coalesce, remove_self_loops, to_undirected

from g2m.errors import DataError

REQUIRED_KEYS = (
    "adj_data",
    "adj_indices",
    "adj_indptr",
    "adj_shape",
    "attr_data",
    "attr_indices",
    "attr_indptr",
    "attr_shape",
    "labels",
)


def _csr(npz, prefix: str) -> sp.csr_matrix:
    return sp.csr_matrix(
        (npz[f"{prefix}_data"], npz[f"{prefix}_indices"], npz[f"{prefix}_indptr"]),
        shape=tuple(npz[f"{prefix}_shape"]),
    )


def read_sparse_graph_npz(path: Path) -> Data:
    """Read a SparseGraph ``.npz`` into a PyG :class:`Data` (raw, not standardised)."""
    try:
        npz = np.load(path, allow_pickle=False)
    except Exception as err:  # zipfile/pickle errors vary by corruption
        raise DataError(f"{path} is not a readable .npz file ({err}).") from err
    with npz:
        missing = [key for key in REQUIRED_KEYS if key not in npz.files]
        if missing:
            raise DataError(
                f"{path} is not a SparseGraph .npz: missing keys {missing}; "
                f"expected {list(REQUIRED_KEYS)}."
            )
        adj = _csr(npz, "adj").tocoo()
        attr = _csr(npz, "attr")
        labels = np.asarray(npz["labels"]).astype(np.int64)
    n = adj.shape[0]
    if attr.shape[0] != n or labels.shape[0] != n:
        raise DataError(
            f"{path}: adjacency has {n} nodes but features have {attr.shape[0]} rows and "
            f"labels {labels.shape[0]} entries."
        )
    edge_index = torch.from_numpy(np.vstack([adj.row, adj.col]).astype(np.int64))
    x = torch.from_numpy(attr.toarray().astype(np.float32))
    return Data(x=x, edge_index=edge_index, y=torch.from_numpy(labels), num_nodes=n)


def standardize(data: Data) -> Data:
    """Unweighted, undirected, self-loop-free, largest connected component (CPF)."""
    edge_index, _ = remove_self_loops(data.edge_index)
    edge_index = coalesce(
        to_undirected(edge_index, num_nodes=data.num_nodes), None, num_nodes=data.num_nodes
    )
    if isinstance(edge_index, tuple):  # older PyG returns (edge_index, None)
        edge_index = edge_index[0]
    data = Data(x=data.x, edge_index=edge_index, y=data.y, num_nodes=data.num_nodes)
    return LargestConnectedComponents(num_components=1)(data)
