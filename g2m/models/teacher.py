"""GNN teachers: PyG's GraphSAGE, GCN and GAT, plus access to their hidden embeddings.

The teacher is any :class:`torch_geometric.nn.models.basic_gnn.BasicGNN` (the YAML in
``g2m/configs/teacher/`` names it through ``_target_``), or one of the propagation models of
:mod:`g2m.models.propagation` (APPNP, SGC, GCNII), which name their output layer and
embedding width themselves. Distillation objectives need the
teacher's logits :math:`Z_t \\in \\mathbb{R}^{N \\times C}` and, for VQGraph and similar,
its last hidden representation :math:`H_t \\in \\mathbb{R}^{N \\times D}`, the input of the
output layer. We capture :math:`H_t` with a forward pre-hook on the last convolution (a
propagation model's ``output_layer``), so PyG's model is used as is (no re-implementation,
no fork).
"""

from __future__ import annotations

import warnings
from functools import partial

import torch
from torch import Tensor, nn
from torch_geometric.nn.models.basic_gnn import BasicGNN
from torch_geometric.utils import (
    add_remaining_self_loops,
    remove_self_loops,
    to_torch_csr_tensor,
)

from g2m.errors import ConfigError

warnings.filterwarnings("ignore", message="Sparse CSR tensor support is in beta")
warnings.filterwarnings("ignore", message="Sparse invariant checks are implicitly disabled")


def sparse_adjacency(edge_index: Tensor, num_nodes: int, self_loops: bool = False) -> Tensor:
    """Transposed adjacency ``A^T`` as a torch CSR tensor (row i lists the sources of i).

    PyG's SAGE, GCN and GAT layers accept it in place of ``edge_index`` and then aggregate
    with a sparse matrix product instead of gather/scatter over edges: the same result
    (checked in the tests) about 6x faster on CPU for Amazon-Photo, and O(E) memory.
    """
    if self_loops:
        edge_index, _ = add_remaining_self_loops(edge_index, num_nodes=num_nodes)
    return to_torch_csr_tensor(edge_index.flip(0), size=(num_nodes, num_nodes))


def output_layer(gnn: nn.Module) -> nn.Module:
    """The module whose input is the teacher's embedding: a basic GNN's last convolution,
    or the ``output_layer`` a propagation model names."""
    if isinstance(gnn, BasicGNN):
        if gnn.jk_mode is not None:
            raise ConfigError("the teacher GNN must end in its last convolution (jk=None)")
        return gnn.convs[-1]
    layer = getattr(gnn, "output_layer", None)
    if not isinstance(layer, nn.Module) or not hasattr(gnn, "embedding_channels"):
        raise ConfigError(
            f"the teacher model {type(gnn).__name__} is neither a PyG BasicGNN nor names its "
            "output_layer and embedding_channels (see g2m.models.propagation)."
        )
    return layer


class GNNTeacher(nn.Module):
    r"""Wrap a PyG ``BasicGNN`` so it returns logits and, on request, hidden embeddings.

    Args:
        gnn: a PyG basic GNN whose ``out_channels`` is the number of classes C, or a model
            with an ``output_layer`` (the module whose input is the embedding) and
            ``embedding_channels`` (:mod:`g2m.models.propagation`).
        self_loops: aggregate over :math:`\mathcal{N}(i) \cup \{i\}`. With PyG's
            ``SAGEConv(root_weight=False)`` this is the "gcn" aggregator of DGL's SAGEConv
            that GLNN's GraphSAGE teacher uses:
            :math:`h_i' = W \cdot \mathrm{mean}_{j \in \mathcal{N}(i) \cup \{i\}} h_j`.
    """

    def __init__(self, gnn: nn.Module, self_loops: bool = False):
        super().__init__()
        self.self_loops = self_loops
        self.gnn = gnn
        self._captured: Tensor | None = None
        output_layer(gnn).register_forward_pre_hook(self._capture)

    def _capture(self, module: nn.Module, args: tuple) -> None:
        self._captured = args[0]

    def adjacency(self, edge_index: Tensor, num_nodes: int) -> Tensor:
        """The sparse adjacency this teacher aggregates over (see :func:`sparse_adjacency`).

        A convolution that adds self-loops itself (PyG's ``add_self_loops``, as GCNConv and
        GATConv) adds one to *every* row of a sparse adjacency, also where the graph has a
        loop already, while on ``edge_index`` it adds only the missing ones; the graph's own
        loops are dropped here so that both give the same result.
        """
        if self.conv_adds_self_loops:
            edge_index, _ = remove_self_loops(edge_index)
        return sparse_adjacency(edge_index, num_nodes, self_loops=self.self_loops)

    @property
    def conv_adds_self_loops(self) -> bool:
        convs = getattr(self.gnn, "convs", [])
        return any(bool(getattr(conv, "add_self_loops", False)) for conv in convs)

    @property
    def embedding_channels(self) -> int:
        """D, the width of the hidden embedding (the last layer's input)."""
        if not isinstance(self.gnn, BasicGNN):
            return self.gnn.embedding_channels
        return self.gnn.in_channels if self.gnn.num_layers == 1 else self.gnn.hidden_channels

    @property
    def selects_rows(self) -> bool:
        """Whether the GNN computes just the output rows asked for (``rows=``; its
        forward then does only the work those rows read: :mod:`g2m.models.sage`)."""
        return bool(getattr(self.gnn, "selects_rows", False))

    def forward(
        self,
        x: Tensor,
        edge_index: Tensor,
        return_embedding: bool = False,
        rows: Tensor | None = None,
    ) -> Tensor | tuple[Tensor, Tensor]:
        """``[N, F]`` features and ``[2, E]`` edges (or :func:`sparse_adjacency`) ->
        ``[N, C]`` logits (and the ``[N, D]`` embedding). ``rows`` (a GNN that
        :attr:`selects_rows`, a sparse adjacency): ``[len(rows), C]``, the logits of those
        nodes; with ``return_embedding`` the embedding is then whatever the last layer read.

        Under autocast (``bf16-mixed``) a sparse adjacency is aggregated in fp32: cuSPARSE
        has no reduced-precision SpMM backward, so the teacher runs in fp32 there.
        """
        if rows is not None and not self.selects_rows:
            raise ValueError(f"{type(self.gnn).__name__} does not take rows=")
        gnn = self.gnn if rows is None else partial(self.gnn, rows=rows)
        if edge_index.layout == torch.sparse_csr and torch.is_autocast_enabled(x.device.type):
            with torch.autocast(x.device.type, enabled=False):
                logits = gnn(x.float(), edge_index)
        else:
            logits = gnn(x, edge_index)
        if not return_embedding:
            return logits
        embedding, self._captured = self._captured, None
        return logits, embedding


@torch.no_grad()
def predict_full_graph(teacher: GNNTeacher, x: Tensor, edge_index: Tensor) -> tuple[Tensor, Tensor]:
    """Eval-mode full-graph logits and embeddings."""
    was_training = teacher.training
    teacher.eval()
    logits, embedding = teacher(x, edge_index, return_embedding=True)
    teacher.train(was_training)
    return logits, embedding
