"""Contextual stochastic block model (CSBM) graphs with tunable homophily.

Deshpande et al. (NeurIPS 2018) define the CSBM: labels :math:`y_i \\sim U\\{0..C-1\\}`,
features drawn around a class centre and edges whose endpoints share a class with
probability :math:`h` (the edge homophily):

.. math::
    \\mathbf{x}_i = s\\,\\boldsymbol{\\mu}_{y_i} + \\boldsymbol{\\epsilon}_i,
    \\quad \\boldsymbol{\\epsilon}_i \\sim \\mathcal{N}(0, I_F),
    \\quad \\lVert \\boldsymbol{\\mu}_c \\rVert = 1,
    \\qquad P(y_u = y_v \\mid (u, v) \\in E) = h.

With a small signal ``s`` an MLP on features alone is weak, while aggregating neighbours of
a homophilous graph averages the noise away, so a GNN teacher clearly beats the MLP. The
generator is vectorised and runs on any device (``E`` random draws, one sort to coalesce).
"""

from __future__ import annotations

import inspect
from typing import TYPE_CHECKING

import torch

from g2m.data.source import DataLocation, GraphSource
from g2m.errors import ConfigError

if TYPE_CHECKING:
    from torch_geometric.data import Data


def _sample_in_class(
    classes: torch.Tensor,
    order: torch.Tensor,
    offsets: torch.Tensor,
    counts: torch.Tensor,
    generator: torch.Generator,
) -> torch.Tensor:
    """One uniformly random node of each requested class."""
    u = torch.rand(classes.numel(), device=classes.device, generator=generator)
    pick = (u * counts[classes]).long().clamp_max(counts[classes] - 1)
    return order[offsets[classes] + pick]


def make_csbm(
    num_nodes: int = 1000,
    num_classes: int = 4,
    num_features: int = 32,
    avg_degree: float = 8.0,
    homophily: float = 0.8,
    feature_signal: float = 1.0,
    seed: int = 0,
    device: str | torch.device = "cpu",
) -> Data:
    """Draw a CSBM graph.

    Args:
        num_nodes: N. num_classes: C (every class non-empty is likely, not guaranteed
            for tiny N). num_features: F.
        avg_degree: expected undirected degree; ``N * avg_degree / 2`` edges are drawn.
        homophily: fraction of edges joining nodes of the same class, in [0, 1].
        feature_signal: norm ``s`` of the class centres relative to unit feature noise.
        seed: the graph's own seed (independent of the split seed).
        device: where to generate (``"cuda"`` for products-scale graphs; ``"auto"``: CUDA
            when available, else CPU).
    """
    if num_nodes < num_classes or num_classes < 2:
        raise ConfigError(f"need num_nodes >= num_classes >= 2, got {num_nodes}, {num_classes}")
    if not 0.0 <= homophily <= 1.0:
        raise ConfigError(f"homophily must be in [0, 1], got {homophily}")
    if avg_degree <= 0 or num_features <= 0:
        raise ConfigError("avg_degree and num_features must be positive")
    from torch_geometric.data import Data
    from torch_geometric.utils import coalesce, remove_self_loops, to_undirected

    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    device = torch.device(device)
    gen = torch.Generator(device=device).manual_seed(seed)
    y = torch.randint(num_classes, (num_nodes,), device=device, generator=gen)
    centres = torch.randn(num_classes, num_features, device=device, generator=gen)
    centres = feature_signal * centres / centres.norm(dim=1, keepdim=True)
    x = centres[y] + torch.randn(num_nodes, num_features, device=device, generator=gen)

    order = torch.argsort(y)
    counts = torch.bincount(y, minlength=num_classes)
    offsets = torch.cumsum(counts, 0) - counts
    num_edges = int(num_nodes * avg_degree / 2)
    src = torch.randint(num_nodes, (num_edges,), device=device, generator=gen)
    same = torch.rand(num_edges, device=device, generator=gen) < homophily
    shift = torch.randint(1, num_classes, (num_edges,), device=device, generator=gen)
    dst_class = torch.where(same, y[src], (y[src] + shift) % num_classes)
    # an empty class cannot be sampled from: fall back to the source's class
    dst_class = torch.where(counts[dst_class] > 0, dst_class, y[src])
    dst = _sample_in_class(dst_class, order, offsets, counts, gen)

    edge_index, _ = remove_self_loops(torch.stack([src, dst]))
    edge_index = coalesce(to_undirected(edge_index, num_nodes=num_nodes), num_nodes=num_nodes)
    return Data(x=x, edge_index=edge_index, y=y, num_nodes=num_nodes)


class CSBMGraph(GraphSource):
    """``dataset=synthetic``: a CSBM graph drawn by :func:`make_csbm` (no files).

    Args:
        name: the dataset's name in metrics and logs.
        generator: :func:`make_csbm`'s keyword arguments.
        largest_component: keep only the largest connected component.
        standardize_edges: false in the shipped YAMLs: :func:`make_csbm`'s edges are
            undirected, coalesced and loop-free already, so the O(E log E) pass is skipped (it
            would take seconds at ogbn-products' size).
    """

    def __init__(
        self,
        name: str,
        generator: dict,
        largest_component: bool,
        standardize_edges: bool,
    ):
        super().__init__(name, largest_component, standardize_edges)
        self.generator = dict(generator)
        unknown = sorted(set(self.generator) - set(inspect.signature(make_csbm).parameters))
        if unknown:
            raise ConfigError(f"dataset.generator: unknown keys {unknown}.")

    def read(self, location: DataLocation) -> Data:
        return make_csbm(**self.generator)
