r"""GraphSAGE with its mean aggregation ordered by cost: the same function, fewer bytes gathered.

For the "gcn"-style SAGE layer without a root weight (:class:`torch_geometric.nn.SAGEConv`
with ``root_weight=False``, ``aggr="mean"``), the layer is

.. math::
    h_i' = W \cdot \operatorname{mean}_{j \in \mathcal{N}(i)} h_j + b
         = \operatorname{mean}_{j \in \mathcal{N}(i)} (W h_j) + b,

because the mean is linear. PyG aggregates first, then projects: the sparse product gathers
one row of width :math:`d_{in}` per edge. At products scale that gather is what a teacher epoch
costs (``experiments/gpu_scale/README.md``, section 8: cuSPARSE runs at 1.2-1.5x the floor of
gathering one uncached row per edge). Two reorderings remove bytes without changing the
function (only the order of float additions):

- **project first where the layer narrows** (:math:`d_{out} < d_{in}`): gather
  :math:`d_{out}`-wide rows of :math:`HW^\top` instead of :math:`d_{in}`-wide rows of
  :math:`H` (the bias is added after, so a node without neighbours still gets :math:`b`);
- **aggregate the input features once**: the first layer's input :math:`X` is a constant of
  full-graph training (no dropout before the first layer, no gradient), so
  :math:`\operatorname{mean}_{\mathcal{N}(i)} x_j` is the same tensor in every epoch and every
  evaluation pass; it is kept for the last ``(X, adjacency)`` pair seen (by identity and
  in-place version, so new features or another graph are aggregated afresh).

Opt-in (``teacher.model._target_: g2m.models.sage.GraphSAGE``): the products-scale tuned
teacher uses it; every other configuration keeps PyG's layer and its exact float order.
"""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor
from torch_geometric.nn import SAGEConv
from torch_geometric.nn.models import GraphSAGE as PyGGraphSAGE


class ReorderedSAGEConv(SAGEConv):
    """:class:`SAGEConv` that projects before aggregating when that gathers fewer bytes, and
    may keep the aggregation of a constant input (``cache_constant_input``).

    Any layer the reordering does not apply to (a root weight, a projection, another
    aggregation, a bipartite input) runs PyG's own forward.
    """

    cache_constant_input: bool = False

    def _reorderable(self, x: object) -> bool:
        return (
            isinstance(x, Tensor)
            and not self.root_weight
            and not self.project
            and self.aggr == "mean"
            and isinstance(self.in_channels, int)
            and self.in_channels > 0
        )

    def forward(self, x, edge_index, size=None) -> Tensor:
        if not self._reorderable(x):
            return super().forward(x, edge_index, size)
        if self.out_channels < self.in_channels:
            projected = x @ self.lin_l.weight.T
            out = self.propagate(edge_index, x=(projected, projected), size=size)
            if self.lin_l.bias is not None:
                out = out + self.lin_l.bias
        else:
            out = self.lin_l(self._aggregate(x, edge_index, size))
        return F.normalize(out, p=2.0, dim=-1) if self.normalize else out

    def _aggregate(self, x: Tensor, edge_index, size) -> Tensor:
        if not (self.cache_constant_input and not x.requires_grad):
            return self.propagate(edge_index, x=(x, x), size=size)
        cached = getattr(self, "_cache", None)
        fresh = (
            cached is not None
            and cached[0] is x
            and cached[1] == x._version
            and cached[2] is edge_index
        )
        if not fresh:
            aggregated = self.propagate(edge_index, x=(x, x), size=size)
            self._cache = (x, x._version, edge_index, aggregated)
        return self._cache[3]


class GraphSAGE(PyGGraphSAGE):
    """PyG's :class:`~torch_geometric.nn.models.GraphSAGE` built from
    :class:`ReorderedSAGEConv` layers, the first of which keeps the aggregation of its
    (constant) input features. Same parameters, same ``state_dict`` keys, same function."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.convs[0].cache_constant_input = True

    def init_conv(self, in_channels, out_channels, **kwargs) -> SAGEConv:
        return ReorderedSAGEConv(in_channels, out_channels, **kwargs)
