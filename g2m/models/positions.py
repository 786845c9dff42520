r"""Position features of a graph's nodes: where a node sits in the graph, as a vector an MLP
can take beside its features (NOSMOG: Tian et al., ICLR 2023, "Learning MLPs on Graphs: A
Unified View of Effectiveness, Robustness, and Efficiency", Sec. 4.1).

**DeepWalk** (Perozzi et al., KDD 2014): uniform random walks, then a skip-gram with negative
sampling (Mikolov et al., NeurIPS 2013) over them. For walks of length *L* and a context of
*c* nodes after each position,

.. math::
    \mathcal{L} = -\sum_{(u, v)} \log \sigma(p_u^\top p_v)
        - \sum_{(u, v')} \log\big(1 - \sigma(p_u^\top p_{v'})\big),

over the pairs :math:`(u, v)` of a node and each of the next *c* nodes of its walk, and
``negatives`` pairs :math:`(u, v')` per node :math:`u` of a walk, :math:`v'` the node at the
same step of another walk of the batch (in-batch negatives: drawn in proportion to how often
walks visit a node, as word2vec draws by frequency, at no cost of gathering: every score is
a product of two views of the walks' gathered rows). One embedding table, as in PyG's
``Node2Vec`` with :math:`p = q = 1`, trained with Adam from word2vec's initialisation; it is
written here over the graph's CSR because PyG's random walk needs ``torch-cluster`` or
``pyg-lib``, which have no PyPI wheels for every platform: :func:`random_walks` draws every
walk of a batch at once, one step for all of them per iteration (a node without neighbours
stays where it is).

**Laplacian eigenvectors** (Dwivedi et al., 2020, "Benchmarking Graph Neural Networks"): the
eigenvectors of the *k* smallest non-trivial eigenvalues of the normalised Laplacian
:math:`I - D^{-1/2} A D^{-1/2}`, by PyG's ``AddLaplacianEigenvectorPE`` (signs drawn at
random, as it does; the seed fixes them).

**Nodes that arrive later** (NOSMOG's inductive setting): a node the positions were not
computed for takes the mean of the positions of its neighbours that have one
(:func:`fill_from_neighbours`); with none, zeros. A new node therefore needs its edges to
the known graph, even though the student itself needs no graph.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from g2m.errors import ConfigError

METHODS = ("deepwalk", "laplacian")


def csr(edge_index: Tensor, num_nodes: int) -> tuple[Tensor, Tensor]:
    """``(rowptr [N + 1], col [E])`` of the edges ``i -> j`` grouped by ``i``."""
    order = torch.argsort(edge_index[0] * num_nodes + edge_index[1])
    row, col = edge_index[0, order], edge_index[1, order]
    counts = torch.bincount(row, minlength=num_nodes)
    rowptr = torch.zeros(num_nodes + 1, dtype=torch.long, device=edge_index.device)
    rowptr[1:] = torch.cumsum(counts, 0)
    return rowptr, col


def random_walks(
    rowptr: Tensor, col: Tensor, start: Tensor, walk_length: int, generator: torch.Generator
) -> Tensor:
    """``[W, walk_length]`` uniform random walks from the ``[W]`` nodes ``start``, all walks
    stepped together; a walk at a node without neighbours stays there."""
    walks = [start]
    current = start
    for _ in range(walk_length - 1):
        first, degree = rowptr[current], rowptr[current + 1] - rowptr[current]
        draw = torch.rand(current.shape, generator=generator, device=current.device)
        offset = (draw * degree).long().clamp(max=(degree - 1).clamp(min=0))
        step = col[(first + offset).clamp(max=max(col.numel() - 1, 0))] if col.numel() else current
        current = torch.where(degree > 0, step, current)
        walks.append(current)
    return torch.stack(walks, dim=1)


def skipgram_loss(weight: Tensor, walks: Tensor, context: int, partners: Tensor) -> Tensor:
    """The skip-gram loss (module docstring) of ``[W, L]`` walks with the ``[N, D]`` table
    ``weight``: each node against the next ``context`` nodes of its walk (positive), and
    against the node at the same step of walk ``partners[k, w]`` for each of the ``[K, W]``
    rows of ``partners`` (negative; another walk of the batch). The mean over pairs of each
    kind. The walks' rows are gathered once; every score is a product of two views of them."""
    rows = weight[walks]  # [W, L, D]
    positive = torch.cat(
        [(rows[:, :-o] * rows[:, o:]).sum(-1).flatten() for o in range(1, context + 1)]
    )
    negative = torch.stack([(rows * rows[p]).sum(-1) for p in partners])  # [K, W, L]
    return -F.logsigmoid(positive).mean() - F.logsigmoid(-negative).mean()


def deepwalk(
    edge_index: Tensor,
    num_nodes: int,
    channels: int,
    walk_length: int,
    walks_per_node: int,
    context: int,
    negatives: int,
    epochs: int,
    lr: float,
    batch_size: int,
    generator: torch.Generator,
) -> Tensor:
    """``[N, channels]`` DeepWalk positions (module docstring): ``epochs`` passes, each over
    ``walks_per_node`` fresh walks from every node, ``batch_size`` start nodes a step."""
    rowptr, col = csr(edge_index, num_nodes)
    device = edge_index.device
    embedding = nn.Embedding(num_nodes, channels).to(device)
    with torch.no_grad():  # word2vec's initialisation, from the seeded generator
        draw = torch.rand(num_nodes, channels, generator=generator, device=device)
        embedding.weight.copy_((draw - 0.5) / channels)
    optimizer = torch.optim.Adam(embedding.parameters(), lr=lr)
    nodes = torch.arange(num_nodes, device=device)
    for _ in range(epochs):
        order = nodes[torch.randperm(num_nodes, generator=generator, device=device)]
        for batch in order.split(batch_size):
            start = batch.repeat(walks_per_node)
            walks = random_walks(rowptr, col, start, walk_length, generator)
            size = walks.size(0)
            partners = torch.stack(
                [torch.randperm(size, generator=generator, device=device) for _ in range(negatives)]
            )
            optimizer.zero_grad()
            skipgram_loss(embedding.weight, walks, context, partners).backward()
            optimizer.step()
    return embedding.weight.detach().clone()


def laplacian_eigenvectors(edge_index: Tensor, num_nodes: int, channels: int) -> Tensor:
    """``[N, channels]`` eigenvectors of the normalised Laplacian (module docstring)."""
    from torch_geometric.data import Data
    from torch_geometric.transforms import AddLaplacianEigenvectorPE

    if channels >= num_nodes - 1:
        raise ConfigError(
            f"positions.channels={channels}: Laplacian positions need fewer channels than the "
            f"graph's nodes minus one ({num_nodes - 1})."
        )
    graph = Data(edge_index=edge_index.cpu(), num_nodes=num_nodes)
    transform = AddLaplacianEigenvectorPE(channels, attr_name="positions", is_undirected=True)
    return transform(graph).positions.float()


def fill_from_neighbours(positions: Tensor, known: Tensor, edge_index: Tensor) -> Tensor:
    """``[N, P]``: ``positions`` where ``known`` (``[N]`` bool), elsewhere the mean of the
    known neighbours' rows along ``edge_index`` (``j -> i`` gives ``i`` the row of ``j``),
    zeros for a node with no known neighbour."""
    src, dst = edge_index
    use = known[src] & ~known[dst]
    total = torch.zeros_like(positions).index_add_(0, dst[use], positions[src[use]])
    count = torch.bincount(dst[use], minlength=positions.size(0)).to(positions.dtype)
    filled = total / count.clamp(min=1).unsqueeze(1)
    return torch.where(known.unsqueeze(1), positions, filled)


__all__ = [
    "METHODS",
    "csr",
    "deepwalk",
    "fill_from_neighbours",
    "laplacian_eigenvectors",
    "random_walks",
    "skipgram_loss",
]
