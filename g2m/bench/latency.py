"""GLNN's latency protocol: predict a handful of random nodes, teacher vs student.

Zhang et al. (GLNN, ICLR 2022, Sec. 5.4) time inference on 10 randomly chosen nodes. A
student MLP reads their 10 feature rows. An L-layer GNN must first *fetch* each node's
L-hop neighbourhood :math:`\\mathcal{N}_L(v)` (the dependency that makes GNNs slow to
serve), then run on what it fetched; the outputs at the seed nodes are exact, because
every node within L - 1 hops of a seed brings all its in-edges. With a fan-out per hop the
teacher samples neighbours instead, as GraphSAGE's mini-batch inference (and GLNN's timing
of it) does. Exactness holds for layers that aggregate over the receiving node's
in-neighbours only (SAGE, GAT); GCN's symmetric normalisation also reads each *sender's*
degree, which is truncated at the fetched neighbourhood's outer shell. Fetching walks the
CSR adjacency hop by hop, so a query costs
:math:`O(\\sum_{u \\in \\mathcal{N}_{L-1}} \\deg u)` plus one ``[N]`` mask, never O(E).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from g2m.bench.timing import median_ms


@dataclass
class CSRGraph:
    """Row pointers and column ids of a (self-looped, if the teacher wants it) adjacency."""

    rowptr: Tensor  # [N + 1]
    col: Tensor  # [E]

    @property
    def num_nodes(self) -> int:
        return self.rowptr.numel() - 1

    @classmethod
    def from_sparse(cls, adj_t: Tensor) -> CSRGraph:
        return cls(adj_t.crow_indices(), adj_t.col_indices())


def neighbours(
    graph: CSRGraph, nodes: Tensor, fanout: int | None = None, generator=None
) -> tuple[Tensor, Tensor]:
    """``(row, col)`` for the in-neighbours of ``nodes`` (row = position in ``nodes``).

    ``fanout=None`` returns every stored entry; an integer draws that many neighbours per
    node uniformly with replacement (GraphSAGE's sampled inference; isolated nodes get none).
    """
    start, end = graph.rowptr[nodes], graph.rowptr[nodes + 1]
    counts = end - start
    if fanout is not None:
        has = counts > 0
        row = torch.arange(nodes.numel(), device=nodes.device)[has].repeat_interleave(fanout)
        u = torch.rand(row.numel(), device=nodes.device, generator=generator)
        return row, graph.col[start[row] + (u * counts[row]).long()]
    row = torch.repeat_interleave(torch.arange(nodes.numel(), device=nodes.device), counts)
    # entry k of row r sits at start[r] + (k - first entry of r)
    first = torch.cumsum(counts, 0) - counts
    offset = torch.arange(row.numel(), device=nodes.device) - first[row]
    return row, graph.col[start[row] + offset]


def fetch_neighbourhood(
    graph: CSRGraph, seeds: Tensor, fanouts: list[int | None], generator=None
) -> tuple[Tensor, Tensor, Tensor]:
    """What an L-layer GNN needs to predict ``seeds`` (``L = len(fanouts)``).

    Hop ``h`` adds the in-edges (all, or ``fanouts[h]`` sampled) of the nodes first reached
    at hop ``h - 1``: every node within ``L - 1`` hops gets its in-edges, which is exactly
    what the seeds' L-layer outputs depend on. Returns the fetched nodes (seeds first), the
    ``[2, E_s]`` edges in local ids (source, target) and the seeds' local positions.
    """
    frontier = seeds.unique()
    reached = torch.zeros(graph.num_nodes, dtype=torch.bool, device=seeds.device)
    reached[frontier] = True
    parts, sources, targets = [frontier], [], []
    for fanout in fanouts:
        row, col = neighbours(graph, frontier, fanout, generator)
        sources.append(col)
        targets.append(frontier[row])
        frontier = col[~reached[col]].unique()
        reached[frontier] = True
        parts.append(frontier)
    nodes = torch.cat(parts)
    # only entries at fetched nodes are ever read, so the [N] lookup needs no initialisation
    local = torch.empty(graph.num_nodes, dtype=torch.long, device=seeds.device)
    local[nodes] = torch.arange(nodes.numel(), device=seeds.device)
    edge_index = torch.stack([local[torch.cat(sources)], local[torch.cat(targets)]])
    return nodes, edge_index, local[seeds]


@torch.no_grad()
def teacher_query(
    teacher, x: Tensor, graph: CSRGraph, seeds: Tensor, fanouts: list[int | None]
) -> Tensor:
    """Logits of ``seeds``: fetch their neighbourhood, run ``teacher`` on it."""
    nodes, edge_index, positions = fetch_neighbourhood(graph, seeds, fanouts)
    adj_t = teacher.adjacency(edge_index, nodes.numel())
    return teacher(x[nodes], adj_t)[positions]


def glnn_latency(
    teacher,
    student,
    x: Tensor,
    graph: CSRGraph,
    fanouts: list[int | None],
    num_nodes: int = 10,
    draws: int = 10,
    seed: int = 0,
) -> dict[str, float]:
    """Median ms to predict ``num_nodes`` random nodes, teacher (with fetching) vs student.

    ``graph`` is the raw adjacency (no self-loops); the teacher adds its own when it builds
    the subgraph's adjacency. ``fanouts[h]`` is the number of neighbours sampled at hop
    ``h + 1`` from the seeds (None: all; GLNN's ogbn-products SAGE samples 15, 10, 5). Each
    draw is a new random node set; the median is over draws.
    """
    device = x.device
    gen = torch.Generator().manual_seed(seed)
    queries = [
        torch.randint(graph.num_nodes, (num_nodes,), generator=gen).to(device) for _ in range(draws)
    ]
    teacher_ms, student_ms = [], []
    for seeds in queries:
        teacher_ms.append(
            median_ms(
                lambda s=seeds: teacher_query(teacher, x, graph, s, fanouts), device, repeats=3
            )
        )
        student_ms.append(median_ms(lambda s=seeds: student(x[s]), device, repeats=3))
    teacher_median = float(torch.tensor(teacher_ms).median())
    student_median = float(torch.tensor(student_ms).median())
    return {
        "teacher_ms": teacher_median,
        "student_ms": student_median,
        "speedup": teacher_median / student_median,
    }
