"""Edges incident to a batch of nodes, for objectives that look at neighbours.

Edge-aware objectives (FF-G2M's low/high-frequency terms) pair a batch node ``i`` with each
neighbour ``j``. :class:`IncidentEdges` keeps the observed graph as a CSR structure sorted
by source (``rowptr``, ``col``) so that the out-edges of any batch are gathered without a
scan over all edges: for a batch of B nodes with E_b incident edges the cost is O(B + E_b),
so mini-batched training scales to graphs whose edge list does not fit one step.
"""

from __future__ import annotations

import torch
from torch import Tensor

from g2m.errors import DataError


class IncidentEdges:
    """CSR view of a directed edge list (store both directions for undirected graphs).

    Args:
        edge_index: ``[2, E]`` (source, target) pairs with ids in ``[0, num_nodes)``.
            Self-loops are dropped: objectives add them themselves where the method says so.
        num_nodes: N.
    """

    def __init__(self, edge_index: Tensor, num_nodes: int):
        if edge_index.dim() != 2 or edge_index.size(0) != 2:
            raise DataError(f"edge_index must have shape [2, E], got {list(edge_index.shape)}.")
        if edge_index.numel() and int(edge_index.max()) >= num_nodes:
            raise DataError(f"edge_index refers to node {int(edge_index.max())} >= {num_nodes}.")
        source, target = edge_index[0], edge_index[1]
        keep = source != target
        source, target = source[keep], target[keep]
        order = torch.argsort(source * num_nodes + target)
        self.col = target[order]
        degree = torch.bincount(source, minlength=num_nodes)
        self.rowptr = torch.zeros(num_nodes + 1, dtype=torch.long, device=edge_index.device)
        self.rowptr[1:] = torch.cumsum(degree, 0)
        self.num_nodes = num_nodes

    @property
    def num_edges(self) -> int:
        return self.col.numel()

    def to(self, device: torch.device | str) -> IncidentEdges:
        self.col, self.rowptr = self.col.to(device), self.rowptr.to(device)
        return self

    def gather(self, nodes: Tensor) -> tuple[Tensor, Tensor]:
        """Out-edges of ``nodes``: ``(position, neighbour)``, both ``[E_b]``.

        ``position[e]`` is the index into ``nodes`` of the edge's source and
        ``neighbour[e]`` the (global) id of its target; edges come grouped by position.
        """
        starts = self.rowptr[nodes]
        counts = self.rowptr[nodes + 1] - starts
        position = torch.repeat_interleave(torch.arange(nodes.numel(), device=nodes.device), counts)
        # offset of each edge inside its source's row: e - (first edge of its group)
        group_start = torch.cumsum(counts, 0) - counts
        within = torch.arange(position.numel(), device=nodes.device) - group_start[position]
        return position, self.col[starts[position] + within]


__all__ = ["IncidentEdges"]
