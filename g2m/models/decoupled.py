r"""A decoupled teacher: an MLP's predictions corrected and smoothed over the graph with the
training labels (Huang et al., ICLR 2021, "Combining Label Propagation and Simple Models
Out-performs Graph Neural Networks"), by PyG's
:class:`~torch_geometric.nn.models.CorrectAndSmooth`.

A base MLP is trained on the training labels alone; its soft predictions
:math:`Z = \mathrm{softmax}(f_\theta(X))` are then, with no parameters, *corrected* by
propagating the training nodes' residuals :math:`E_L = Y_L - Z_L` and *smoothed* by label
propagation with the training labels clamped,

.. math::
    E^{(k+1)} = \alpha_1 S E^{(k)} + (1 - \alpha_1) E, \qquad
    Y^{(k+1)} = \alpha_2 S Y^{(k)} + (1 - \alpha_2) G, \qquad S = D^{-1/2} A D^{-1/2},

(``num_correction_layers`` and ``num_smoothing_layers`` steps; PyG's ``autoscale`` or a
fixed ``scale`` sets how much of the residual is added back). In training mode the model
returns the base MLP's logits, on which the teacher stage's cross-entropy trains; in eval
mode (validation, selection, the stored targets) it returns :math:`\log` of the corrected
and smoothed distribution, so the teacher is *selected on validation as C&S* and the student
distils C&S's soft labels. The embedding is the base MLP's last hidden layer.

The model needs the training labels beside its input (``uses_training_labels``): the
teacher stage attaches them (:meth:`CorrectAndSmoothNet.attach_labels`) for each graph it
runs the model on (the observed graph, and the full graph in the inductive setting's test),
keyed by the graph's node count; a pass over a graph without labels attached is refused.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn
from torch_geometric.nn.models import MLP, CorrectAndSmooth

from g2m.errors import ConfigError, check_integer


class CorrectAndSmoothNet(nn.Module):
    """Base MLP + Correct and Smooth (module docstring).

    Args:
        in_channels, hidden_channels, out_channels: F, D, C.
        num_layers: layers of the base MLP (>= 1). dropout: its dropout.
        num_correction_layers, correction_alpha: the correction's steps and
            :math:`\\alpha_1`. num_smoothing_layers, smoothing_alpha: the smoothing's steps
            and :math:`\\alpha_2`.
        autoscale: scale the propagated residual to the training residual's size (the
            paper's "autoscale"); else ``scale`` times it ("FDiff-scale").
    """

    uses_training_labels = True

    def __init__(
        self,
        in_channels: int,
        hidden_channels: int,
        out_channels: int,
        num_layers: int,
        dropout: float,
        num_correction_layers: int,
        correction_alpha: float,
        num_smoothing_layers: int,
        smoothing_alpha: float,
        autoscale: bool,
        scale: float,
    ):
        super().__init__()
        check_integer("num_layers", num_layers, 1)
        check_integer("num_correction_layers", num_correction_layers, 0)
        check_integer("num_smoothing_layers", num_smoothing_layers, 0)
        for key, value in (("correction_alpha", correction_alpha),
                           ("smoothing_alpha", smoothing_alpha), ("dropout", dropout)):  # fmt: skip
            if not 0 <= float(value) <= 1:
                raise ConfigError(f"{key} must be in [0, 1], got {value}.")
        channels = [in_channels] + [hidden_channels] * (num_layers - 1) + [out_channels]
        self.mlp = MLP(channels, dropout=dropout, norm=None)
        self.post = CorrectAndSmooth(
            num_correction_layers, correction_alpha, num_smoothing_layers, smoothing_alpha,
            autoscale, scale,
        )  # fmt: skip
        self.embedding_channels = in_channels if num_layers == 1 else hidden_channels
        self.num_classes = out_channels
        self._labels: dict[int, tuple[Tensor, Tensor]] = {}

    @property
    def output_layer(self) -> nn.Module:
        return self.mlp.lins[-1]

    def attach_labels(self, y: Tensor, train_mask: Tensor) -> None:
        """The ``[N]`` labels and ``[N]`` bool mask of training nodes of a graph of N nodes
        (only the masked labels are read)."""
        self._labels[int(y.size(0))] = (y, train_mask.bool())

    def forward(self, x: Tensor, adj: Tensor) -> Tensor:
        """``[N, F]`` features, edges or CSR adjacency -> ``[N, C]`` logits (module docstring)."""
        logits = self.mlp(x)
        if self.training:
            return logits
        labels = self._labels.get(int(x.size(0)))
        if labels is None:
            raise RuntimeError(
                f"CorrectAndSmoothNet has no training labels for a graph of {x.size(0)} nodes: "
                "call attach_labels(y, train_mask) first."
            )
        y, mask = (t.to(x.device) for t in labels)
        y_true = nn.functional.one_hot(y[mask], self.num_classes).to(logits.dtype)
        soft = logits.softmax(dim=-1)
        with torch.autocast(x.device.type, enabled=False):  # propagation in fp32
            corrected = self.post.correct(soft.float(), y_true.float(), mask, adj)
            smoothed = self.post.smooth(corrected, y_true.float(), mask, adj)
        smoothed = smoothed / smoothed.sum(-1, keepdim=True).clamp_min(1e-12)
        return smoothed.clamp_min(torch.finfo(smoothed.dtype).tiny).log()


__all__ = ["CorrectAndSmoothNet"]
