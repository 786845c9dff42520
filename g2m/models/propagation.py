r"""Teachers that decouple or deepen propagation: APPNP, SGC and GCNII, from PyG's layers.

These are not PyG ``BasicGNN``\ s (they are not a stack of one kind of convolution), so each
is a small ``nn.Module`` over PyG's own layers — :class:`torch_geometric.nn.APPNP`,
:class:`torch_geometric.nn.SGConv`, :class:`torch_geometric.nn.GCN2Conv` and
:class:`torch_geometric.nn.models.MLP` — taking PyG's constructor vocabulary as plain
keyword arguments. Each exposes what :class:`g2m.models.teacher.GNNTeacher` needs besides
its logits: ``output_layer``, the module whose *input* is the teacher's embedding
:math:`H_t` (captured there by a forward pre-hook), and ``embedding_channels``, D.

All three propagate with the GCN-normalised adjacency (Kipf & Welling, 2017)

.. math::
    \hat A = \tilde D^{-1/2} (A + I) \tilde D^{-1/2},

where self-loops are added only to nodes that have none (PyG's ``add_remaining_self_loops``,
what these layers do themselves on an edge list). The model takes either ``[2, E]`` edges or
g2m's CSR adjacency (:func:`g2m.models.teacher.sparse_adjacency`) and gives the same result
for both (tested): :func:`self_looped` turns either into the CSR :math:`(A + I)^T` once per
adjacency tensor (:class:`LastAdjacency`), and PyG's
:func:`~torch_geometric.nn.conv.gcn_conv.gcn_norm` normalises it.
(Handing a CSR adjacency straight to these layers would add a second loop to a node that
already has one, as WebKB's do.) ``self_loops`` in their teacher YAMLs is therefore false.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch_geometric.nn import APPNP, GCN2Conv, SGConv
from torch_geometric.nn.conv.gcn_conv import gcn_norm
from torch_geometric.nn.models import MLP
from torch_geometric.utils import (
    add_remaining_self_loops,
    is_torch_sparse_tensor,
    to_edge_index,
    to_torch_csr_tensor,
)

from g2m.errors import ConfigError


def self_looped(adj: Tensor, num_nodes: int) -> Tensor:
    """``[2, E]`` edges or a CSR ``A^T`` -> the CSR ``(A + I)^T``, a loop added only where
    a node has none (weights kept; 1 for an edge list)."""
    if is_torch_sparse_tensor(adj):
        (target, source), weight = to_edge_index(adj)
        edge_index = torch.stack([source, target])
    else:
        edge_index, weight = adj, None
    edge_index, weight = add_remaining_self_loops(edge_index, weight, 1.0, num_nodes)
    return to_torch_csr_tensor(edge_index.flip(0), weight, size=(num_nodes, num_nodes))


def normalized(adj: Tensor, num_nodes: int) -> Tensor:
    r"""The CSR :math:`\hat A^T` of ``adj`` (edges or CSR): see the module docstring."""
    return gcn_norm(self_looped(adj, num_nodes), add_self_loops=False)[0]


class LastAdjacency:
    """``make(adj, num_nodes)`` of the last adjacency tensor given, kept until another comes.

    A full-graph teacher gets the very same adjacency tensor in every epoch (and for its
    final pass), so its self-looped, normalised form is built once per graph, not once per
    forward pass; any other tensor (the full graph after training on the observed one, a
    copy on another device) is a new key and is built afresh. The tensors are never
    written in place, so identity stands for equality here.
    """

    def __init__(self, make):
        self.make = make
        self._key: Tensor | None = None
        self._value: Tensor | None = None

    def __call__(self, adj: Tensor, num_nodes: int) -> Tensor:
        if adj is not self._key:
            self._key, self._value = adj, self.make(adj, num_nodes)
        return self._value


def _positive(**values: float) -> None:
    for key, value in values.items():
        if not value >= 1:
            raise ConfigError(f"{key} must be an integer >= 1, got {value}.")


def _fraction(key: str, value: float, upper_closed: bool = False) -> None:
    if not (0 <= value <= 1 if upper_closed else 0 <= value < 1):
        raise ConfigError(f"{key} must be in [0, 1{']' if upper_closed else ')'}, got {value}.")


class APPNPNet(nn.Module):
    r"""APPNP (Gasteiger et al., "Predict then Propagate", ICLR 2019): an MLP predicts
    :math:`H = f_\theta(X)`, then personalised PageRank propagates it,

    .. math::
        Z^{(0)} = H, \quad Z^{(k+1)} = (1 - \alpha) \hat A Z^{(k)} + \alpha H, \quad
        \text{logits} = Z^{(K)}.

    The embedding is the MLP's last hidden layer (the input of its output layer): a
    function of the node's own features, since propagation comes after it.

    Args:
        in_channels, hidden_channels, out_channels: F, D, C.
        num_layers: layers of the MLP (>= 1; 1: a linear model, D = F).
        K: propagation steps. alpha: teleport probability :math:`\alpha`.
        dropout: dropout of the MLP (before each linear layer, as in the paper).
    """

    def __init__(
        self,
        in_channels: int,
        hidden_channels: int,
        out_channels: int,
        num_layers: int,
        K: int,
        alpha: float,
        dropout: float,
    ):
        super().__init__()
        _positive(num_layers=num_layers, K=K)
        _fraction("alpha", alpha, upper_closed=True)
        _fraction("dropout", dropout)
        channels = [in_channels] + [hidden_channels] * (num_layers - 1) + [out_channels]
        # dropout on the input too: PyG's MLP drops only after hidden layers
        self.input_dropout = nn.Dropout(dropout)
        self.mlp = MLP(channels, dropout=dropout, norm=None)
        self.propagation = APPNP(K, alpha, normalize=False)
        self.embedding_channels = in_channels if num_layers == 1 else hidden_channels
        self.adjacency = LastAdjacency(normalized)

    @property
    def output_layer(self) -> nn.Module:
        return self.mlp.lins[-1]

    def forward(self, x: Tensor, adj: Tensor) -> Tensor:
        """``[N, F]`` features, edges or CSR adjacency -> ``[N, C]`` logits."""
        h = self.mlp(self.input_dropout(x))
        return self.propagation(h, self.adjacency(adj, x.size(0)))


class SGC(nn.Module):
    r"""SGC (Wu et al., "Simplifying Graph Convolutional Networks", ICML 2019): K
    propagation steps without non-linearity, then one linear classifier,

    .. math::
        \text{logits} = \hat A^K X W.

    The embedding is :math:`\hat A^K X` (D = F, the input of the linear layer).

    Args:
        in_channels, out_channels: F, C. K: propagation steps (the paper's K = 2).
    """

    def __init__(self, in_channels: int, out_channels: int, K: int):
        super().__init__()
        _positive(K=K)
        # SGConv normalises what it is given: hand it (A + I), adding no loop of its own
        self.conv = SGConv(in_channels, out_channels, K=K, add_self_loops=False)
        self.embedding_channels = in_channels
        self.adjacency = LastAdjacency(self_looped)

    @property
    def output_layer(self) -> nn.Module:
        return self.conv.lin

    def forward(self, x: Tensor, adj: Tensor) -> Tensor:
        """``[N, F]`` features, edges or CSR adjacency -> ``[N, C]`` logits."""
        return self.conv(x, self.adjacency(adj, x.size(0)))


class GCNII(nn.Module):
    r"""GCNII (Chen et al., "Simple and Deep Graph Convolutional Networks", ICML 2020):
    a linear input layer, L layers with initial residual and identity mapping, a linear
    output layer,

    .. math::
        H^{(0)} = \mathrm{ReLU}(X W_{in}), \quad
        H^{(l+1)} = \mathrm{ReLU}\big(((1 - \alpha) \hat A H^{(l)} + \alpha H^{(0)})
            ((1 - \beta_l) I + \beta_l W^{(l)})\big), \quad
        \beta_l = \log(\theta / l + 1),

    logits :math:`H^{(L)} W_{out}`; dropout before every linear map. The embedding is
    :math:`H^{(L)}` (D = ``hidden_channels``). PyG's example ``gcn2_cora.py`` is this model.

    Args:
        in_channels, hidden_channels, out_channels: F, D, C.
        num_layers: L, the GCN2Conv layers (the paper uses 64 on Cora).
        alpha: initial-residual weight. theta: identity-mapping strength.
        dropout: dropout before each layer. shared_weights: one W per layer for both terms.
    """

    def __init__(
        self,
        in_channels: int,
        hidden_channels: int,
        out_channels: int,
        num_layers: int,
        alpha: float,
        theta: float,
        dropout: float,
        shared_weights: bool = True,
    ):
        super().__init__()
        _positive(num_layers=num_layers)
        _fraction("alpha", alpha, upper_closed=True)
        _fraction("dropout", dropout)
        if not theta > 0:
            raise ConfigError(f"theta must be > 0, got {theta}.")
        self.dropout = dropout
        self.input_layer = nn.Linear(in_channels, hidden_channels)
        self.convs = nn.ModuleList(
            GCN2Conv(hidden_channels, alpha, theta, layer + 1, shared_weights, normalize=False)
            for layer in range(num_layers)
        )
        self.head = nn.Linear(hidden_channels, out_channels)
        self.embedding_channels = hidden_channels
        self.adjacency = LastAdjacency(normalized)

    @property
    def output_layer(self) -> nn.Module:
        return self.head

    def forward(self, x: Tensor, adj: Tensor) -> Tensor:
        """``[N, F]`` features, edges or CSR adjacency -> ``[N, C]`` logits."""
        adj = self.adjacency(adj, x.size(0))  # every layer uses the same A-hat
        x = F.dropout(x, self.dropout, self.training)
        x = x_0 = self.input_layer(x).relu()
        for conv in self.convs:
            x = F.dropout(x, self.dropout, self.training)
            x = conv(x, x_0, adj).relu()
        return self.head(F.dropout(x, self.dropout, self.training))


__all__ = ["GCNII", "SGC", "APPNPNet", "LastAdjacency", "normalized", "self_looped"]
