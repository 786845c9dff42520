r"""Propagate & Distill (Shin and Shin, LoG 2023, "Propagate & Distill: Towards Effective
Graph Learners Using Propagation-Embracing MLPs", Sec. 3).

A GNN separates a feature transformation :math:`T` from a propagation :math:`\Pi`; an MLP
student that imitates the teacher's outputs must learn both. Distilling from
:math:`\Pi^{-1}` applied to the student is costly, so P&D instead *propagates the teacher's
output once, before distillation*, an approximation of the same idea. With
:math:`P^t = \mathrm{softmax}(Z^t)` the teacher's soft labels and
:math:`\hat A = D^{-1/2} A D^{-1/2}` the symmetric-normalised adjacency of the observed graph
(no self-loops added), *k* steps of personalised propagation with weight :math:`\gamma`

.. math::
    Y^{(0)} = P^t, \qquad
    Y^{(l+1)} = \gamma\,\hat A\,Y^{(l)} + (1 - \gamma)\,P^t, \qquad
    \tilde P^t_i = Y^{(k)}_i \big/ \textstyle\sum_c Y^{(k)}_{ic},

give the targets, and the student is trained as in GLNN on them,

.. math::
    \mathcal{L}_{kd} = T^2\,\frac{1}{B}\sum_i
        \mathrm{KL}\big(\mathrm{softmax}(\log \tilde P^t_i / T) \,\|\,
        \mathrm{softmax}(z^s_i / T)\big).

The propagation is :class:`torch_geometric.nn.models.LabelPropagation` (``num_layers`` = *k*,
``alpha`` = :math:`\gamma`, without its clamping; rows renormalised after, as the authors
do). It runs once, in :meth:`PropagatedDistillation.prepare_targets`, which the student stage
calls with the observed graph only (in the inductive setting no edge touches a held-out
node, whose row stays NaN and gives no mass to any other). ``num_layers=0`` is GLNN.

Not included: the paper's variant that resets the training nodes' targets after every step
(the released code's ``fix_train``), and its inverse-propagation student (InD).
"""

from __future__ import annotations

from collections.abc import Mapping

import torch
from torch import Tensor
from torch_geometric.nn.models import LabelPropagation

from g2m.errors import ConfigError, check_integer
from g2m.losses.base import DistillationBatch, DistillationObjective, check_temperature, softened_kl


def propagate_soft_labels(
    probabilities: Tensor, edge_index: Tensor, num_layers: int, alpha: float
) -> Tensor:
    """``[N, C]``: *k* steps of :math:`Y \\leftarrow \\gamma \\hat A Y + (1-\\gamma) P`, rows
    renormalised; rows that are not finite (held-out nodes) give no mass and stay NaN."""
    finite = torch.isfinite(probabilities).all(dim=-1)
    start = torch.where(finite[:, None], probabilities, torch.zeros_like(probabilities))
    propagation = LabelPropagation(num_layers=num_layers, alpha=alpha)
    out = propagation(start, edge_index, post_step=lambda y: y)
    out = out / out.sum(dim=-1, keepdim=True).clamp_min(torch.finfo(out.dtype).tiny)
    return torch.where(finite[:, None], out, torch.full_like(out, float("nan")))


class PropagatedDistillation(DistillationObjective):
    """``loss=pnd``: one term, ``kd``, to the propagated teacher targets.

    Args:
        label_weight: :math:`\\lambda`, weight of the label CE term.
        temperature: :math:`T > 0` of the KL's softmaxes.
        num_layers: :math:`k \\ge 0` propagation steps.
        alpha: :math:`\\gamma \\in [0, 1)`, the weight of the propagated part per step.
        weights: ``{"kd": w}``.
    """

    name = "pnd"
    term_names = ("kd",)
    prepares_targets = True

    def __init__(
        self,
        label_weight: float = 0.0,
        temperature: float = 1.0,
        num_layers: int = 10,
        alpha: float = 0.9,
        weights: Mapping[str, float] | None = None,
    ):
        super().__init__(label_weight, weights if weights is not None else {"kd": 1.0})
        self.temperature = check_temperature(temperature)
        check_integer("loss.num_layers (k)", num_layers, 0)
        if not 0.0 <= float(alpha) < 1.0:
            raise ConfigError(f"loss.alpha (gamma) must be in [0, 1), got {alpha}.")
        self.num_layers, self.alpha = int(num_layers), float(alpha)

    def prepare_targets(self, logits: Tensor, edge_index: Tensor, num_nodes: int) -> Tensor:
        """Log-probabilities of the propagated teacher distribution (valid logits)."""
        if logits.size(0) != num_nodes:
            raise ValueError(f"{logits.size(0)} target rows for a graph of {num_nodes} nodes.")
        # on the edges' device (a graph generated on the GPU stays there), back to the logits'
        probabilities = torch.softmax(logits.to(edge_index.device).float(), dim=-1)
        propagated = propagate_soft_labels(probabilities, edge_index, self.num_layers, self.alpha)
        return propagated.clamp_min(torch.finfo(propagated.dtype).tiny).log().to(logits.device)

    def distillation_terms(self, batch: DistillationBatch) -> dict[str, Tensor]:
        return {"kd": softened_kl(batch.student_logits, batch.teacher_logits, self.temperature)}


__all__ = ["PropagatedDistillation", "propagate_soft_labels"]
