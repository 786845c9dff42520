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

Two more options leave the function as it is and cut work that a step does not read:

- ``rows`` (:meth:`GraphSAGE.forward`): the rows of the output a loss or a metric reads (the
  training nodes, the validation nodes). In training mode only the last layer is restricted
  to them (every earlier layer runs over all nodes: batch norm's statistics and dropout's
  draws are the full forward's); in eval mode each layer computes only the rows the next
  needs (:func:`g2m.models.aggregation.receptive_rows`), so scoring 1,410 validation nodes of
  a products-size graph no longer runs the whole graph through every layer.
- ``stored_transpose``: aggregate with :func:`g2m.models.aggregation.mean_aggregate`, whose
  backward multiplies by a transposed adjacency built once instead of autograd's transposed
  product in every step (optionally gathering in bf16: ``gather_dtype``).

Opt-in (``teacher.model._target_: g2m.models.sage.GraphSAGE``): the products-scale tuned
teacher uses it; every other configuration keeps PyG's layer and its exact float order.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor
from torch_geometric.nn import SAGEConv
from torch_geometric.nn.models import GraphSAGE as PyGGraphSAGE
from torch_geometric.nn.norm import BatchNorm

from g2m.errors import ConfigError
from g2m.models.aggregation import mean_aggregate, receptive_rows, select_rows

GATHER_DTYPES = {"float32": None, "bfloat16": torch.bfloat16}


class ReorderedSAGEConv(SAGEConv):
    """:class:`SAGEConv` that projects before aggregating when that gathers fewer bytes, and
    may keep the aggregation of a constant input (``cache_constant_input``).

    Any layer the reordering does not apply to (a root weight, a projection, another
    aggregation, a bipartite input) runs PyG's own forward.
    """

    cache_constant_input: bool = False
    stored_transpose: bool = False
    gather_dtype: torch.dtype | None = None

    def _reorderable(self, x: object) -> bool:
        return (
            isinstance(x, Tensor)
            and not self.root_weight
            and not self.project
            and self.aggr == "mean"
            and isinstance(self.in_channels, int)
            and self.in_channels > 0
        )

    def forward(self, x, edge_index, size=None, out_rows: Tensor | None = None) -> Tensor:
        """PyG's layer, reordered; ``edge_index`` may be a rectangular CSR ``[rows, len(x)]``
        (:func:`~g2m.models.aggregation.select_rows`). ``out_rows``: only these rows of the
        output, from the kept aggregation of a constant input (the first layer)."""
        if not self._reorderable(x):
            return super().forward(x, edge_index, size)
        if out_rows is not None:
            if not self._caches(x):
                raise ValueError("out_rows needs the kept aggregation of a constant input")
            out = self.lin_l(self._aggregate(x, edge_index, size)[out_rows])
        elif self.out_channels < self.in_channels:
            projected = x @ self.lin_l.weight.T
            out = self._mean(projected, edge_index, size)
            if self.lin_l.bias is not None:
                out = out + self.lin_l.bias
        else:
            out = self.lin_l(self._aggregate(x, edge_index, size))
        return F.normalize(out, p=2.0, dim=-1) if self.normalize else out

    def __getstate__(self):
        state = super().__getstate__().copy()
        state.pop("_cache", None)  # one graph's tensors: recomputed on use, never copied
        return state

    def _caches(self, x: Tensor) -> bool:
        return self.cache_constant_input and not x.requires_grad

    def _mean(self, x: Tensor, edge_index, size) -> Tensor:
        if self.stored_transpose and getattr(edge_index, "layout", None) == torch.sparse_csr:
            return mean_aggregate(edge_index, x, self.gather_dtype)
        return self.propagate(edge_index, x=(x, x), size=size)

    def _aggregate(self, x: Tensor, edge_index, size) -> Tensor:
        if not self._caches(x):
            return self._mean(x, edge_index, size)
        cached = getattr(self, "_cache", None)
        fresh = (
            cached is not None
            and cached[0] is x
            and cached[1] == x._version
            and cached[2] is edge_index
        )
        if not fresh:
            aggregated = self._mean(x, edge_index, size)
            self._cache = (x, x._version, edge_index, aggregated)
        return self._cache[3]


class GraphSAGE(PyGGraphSAGE):
    """PyG's :class:`~torch_geometric.nn.models.GraphSAGE` built from
    :class:`ReorderedSAGEConv` layers, the first of which keeps the aggregation of its
    (constant) input features. Same parameters, same ``state_dict`` keys, same function.

    Args (besides PyG's):
        stored_transpose: aggregate through :func:`g2m.models.aggregation.mean_aggregate`
            (a transposed adjacency kept for the backward) on CSR adjacencies.
        gather_dtype: ``"float32"`` (default) or ``"bfloat16"`` (with ``stored_transpose``,
            CUDA only): the dtype rows are gathered in.
    """

    @property
    def selects_rows(self) -> bool:
        """Whether ``forward(..., rows=)`` gives exactly the full forward's rows: no jumping
        knowledge, and every norm per node in eval mode and over all nodes in training
        (none, or batch norm; a graph-level norm's statistics would change with the rows)."""
        per_node = (torch.nn.Identity, BatchNorm)
        return self.jk_mode is None and all(isinstance(n, per_node) for n in self.norms)

    def __init__(self, *args, stored_transpose: bool = False, gather_dtype: str = "float32",
                 **kwargs):  # fmt: skip
        super().__init__(*args, **kwargs)
        if gather_dtype not in GATHER_DTYPES:
            raise ConfigError(
                f"gather_dtype must be one of {list(GATHER_DTYPES)}, got '{gather_dtype}'."
            )
        if GATHER_DTYPES[gather_dtype] is not None and not stored_transpose:
            raise ConfigError("gather_dtype=bfloat16 needs stored_transpose=true.")
        self.convs[0].cache_constant_input = True
        for conv in self.convs:
            conv.stored_transpose = stored_transpose
            conv.gather_dtype = GATHER_DTYPES[gather_dtype]
        self._plans: dict = {}

    def init_conv(self, in_channels, out_channels, **kwargs) -> SAGEConv:
        return ReorderedSAGEConv(in_channels, out_channels, **kwargs)

    def forward(self, x: Tensor, edge_index, *args, rows: Tensor | None = None, **kwargs):
        """PyG's forward; with ``rows`` (node ids, a CSR adjacency), ``[len(rows), C]``: the
        output's rows ``rows`` only, computed from what they read (module docstring)."""
        if rows is None:
            return super().forward(x, edge_index, *args, **kwargs)
        if not self.selects_rows:
            raise ValueError("rows= needs no jumping knowledge and no norm but batch norm")
        if args or kwargs or getattr(edge_index, "layout", None) != torch.sparse_csr:
            raise ValueError("rows= needs a CSR adjacency and no other forward arguments")
        plan = self._plan(edge_index, rows)
        if self.training:  # every layer but the last over all nodes, as the full forward
            for conv, norm in zip(self.convs[:-1], self.norms[:-1], strict=True):
                x = self._after_conv(conv(x, edge_index), norm)
            return self.convs[-1](x, plan.last)
        first = self.convs[0]
        if first._caches(x):
            x = first(x, edge_index, out_rows=plan.rows[0])
        else:
            x = first(x, plan.adjacency(0))
        for i in range(1, self.num_layers):
            x = self._after_conv(x, self.norms[i - 1])
            x = self.convs[i](x, plan.adjacency(i))
        return x

    def _after_conv(self, x: Tensor, norm) -> Tensor:
        """What PyG's forward does between two convolutions (no jumping knowledge)."""
        if self.act is not None and self.act_first:
            x = self.act(x)
        x = norm(x)
        if self.act is not None and not self.act_first:
            x = self.act(x)
        return self.dropout(x)

    def _plan(self, adj: Tensor, rows: Tensor) -> _RowsPlan:
        """The restricted adjacencies for ``rows`` of ``adj`` (kept for the last adjacency
        each ``rows`` tensor was used with, by identity and in-place version)."""
        kept = self._plans.get(id(rows))
        if kept is None or not kept.serves(adj, rows):
            kept = self._plans[id(rows)] = _RowsPlan(adj, rows, self.num_layers)
        return kept

    def __getstate__(self):
        state = super().__getstate__().copy()
        state["_plans"] = {}  # device tensors of one graph: rebuilt on use, never saved
        return state


class _RowsPlan:
    """What a forward restricted to ``rows`` multiplies by, built on first use: ``last``
    (``adj[rows]``, all columns), ``rows`` (each layer's output rows, from
    :func:`~g2m.models.aggregation.receptive_rows`) and ``adjacency[i]`` (layer i's rows of
    ``adj``, columns renumbered to the previous layer's rows; the first keeps all columns)."""

    def __init__(self, adj: Tensor, rows: Tensor, num_layers: int):
        self.of, self.num_layers = (adj, rows, rows._version), num_layers
        self._last: Tensor | None = None
        self._rows: list[Tensor] | None = None
        self._adjacency: dict[int, Tensor] = {}

    def serves(self, adj: Tensor, rows: Tensor) -> bool:
        return self.of[0] is adj and self.of[1] is rows and self.of[2] == rows._version

    @property
    def last(self) -> Tensor:
        if self._last is None:
            self._last = select_rows(self.of[0], self.of[1])
        return self._last

    @property
    def rows(self) -> list[Tensor]:
        if self._rows is None:
            self._rows = receptive_rows(self.of[0], self.of[1], self.num_layers)
        return self._rows

    def adjacency(self, layer: int) -> Tensor:
        if layer not in self._adjacency:
            columns = self.rows[layer - 1] if layer > 0 else None
            self._adjacency[layer] = select_rows(self.of[0], self.rows[layer], columns)
        return self._adjacency[layer]
