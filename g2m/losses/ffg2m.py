r"""FF-G2M low- and high-frequency distillation (Wu et al., AAAI 2023, "Extracting
Low-/High-Frequency Knowledge from Graph Neural Networks and Injecting it into MLPs: An
Effective GNN-to-MLP Distillation Framework", Sec. 4).

With teacher logits :math:`z^t`, student logits :math:`z^s` and
:math:`p(z) = \mathrm{softmax}(z)`:

**Low-frequency distillation** (LFD): a GNN layer is a low-pass filter that mixes a
node's neighbourhood, so the student at node *i* learns the teacher's prediction at every
neighbour *j*, the node itself included,

.. math::
    \mathcal{L}_{low} = \frac{1}{|\tilde{\mathcal{E}}|}
        \sum_{(i,j) \in \tilde{\mathcal{E}}}
        \mathrm{KL}\big(p(z^t_j) \,\|\, p(z^s_i)\big),
    \qquad \tilde{\mathcal{E}} = \mathcal{E} \cup \{(i,i)\}.

**High-frequency distillation** (HFD): the high-frequency component is the difference
between a node and its neighbours; the student keeps the teacher's pairwise differences,
with a temperature :math:`\tau`,

.. math::
    \mathcal{L}_{high} = \frac{1}{|\mathcal{E}|} \sum_{(i,j) \in \mathcal{E}}
        \mathrm{KL}\big(p(|z^t_i - z^t_j| / \tau) \,\|\, p(|z^s_i - z^s_j| / \tau)\big)

over the edges without self-loops (a self-loop has no difference to keep). As in the
authors' code, neither term is rescaled by :math:`\tau^2` and LFD has no temperature.

The objective is :math:`\lambda\,\mathcal{L}_{CE} + (1-\lambda)(w_{kd}\mathcal{L}_{kd} +
w_{low}\mathcal{L}_{low} + w_{high}\mathcal{L}_{high})`, where :math:`\mathcal{L}_{kd}` is
the node-wise soft-logit KL of GLNN (off by default; only the self-loops of LFD). The
paper's ablations are overrides: ``loss.weights.high=0`` (LFD only), ``loss.weights.low=0``
(HFD only) and ``loss.weights.low=0 loss.weights.high=0 loss.weights.kd=1`` (plain GLNN).

In a mini-batch the sums run over the edges leaving the batch nodes (each term is the
mean over those edges), so an epoch sees every edge once and the per-batch terms, weighted
by their edge counts, add up to the full-batch term; with ``student.batch_size=null`` the
terms are exactly the full-batch ones.
"""

from __future__ import annotations

from collections.abc import Mapping

import torch
from torch import Tensor

from g2m.losses.base import (
    DistillationBatch,
    DistillationObjective,
    check_temperature,
    kl_divergence,
)


def low_frequency_term(batch: DistillationBatch) -> Tensor:
    """:math:`\\mathcal{L}_{low}` over the batch's incident edges plus one self-loop per node."""
    student = torch.cat([batch.student_logits, batch.student_logits[batch.edge_position]])
    teacher = torch.cat([batch.teacher_logits, batch.neighbour_teacher_logits])
    return kl_divergence(student, teacher)


def high_frequency_term(batch: DistillationBatch, temperature: float) -> Tensor:
    """:math:`\\mathcal{L}_{high}` over the batch's incident edges (0 when there are none)."""
    position = batch.edge_position
    if position.numel() == 0:
        return batch.student_logits.float().sum() * 0.0
    student_gap = (batch.student_logits[position] - batch.neighbour_student_logits).abs()
    teacher_gap = (batch.teacher_logits[position] - batch.neighbour_teacher_logits).abs()
    return kl_divergence(student_gap, teacher_gap, temperature)


class FrequencyDistillation(DistillationObjective):
    """``loss=ffg2m``: terms ``kd`` (GLNN, node-wise), ``low`` (LFD) and ``high`` (HFD).

    Args:
        label_weight: :math:`\\lambda`, weight of the label CE term.
        temperature: :math:`\\tau > 0` of the HFD softmax.
        weights: ``{"kd": w_kd, "low": w_low, "high": w_high}``.
    """

    name = "ffg2m"
    term_names = ("kd", "low", "high")
    needs_edges = True

    def __init__(
        self,
        label_weight: float = 0.1,
        temperature: float = 1.5,
        weights: Mapping[str, float] | None = None,
    ):
        default = {"kd": 0.0, "low": 1.0, "high": 1.0}
        super().__init__(label_weight, weights if weights is not None else default)
        self.temperature = check_temperature(temperature)

    def distillation_terms(self, batch: DistillationBatch) -> dict[str, Tensor]:
        if batch.edge_position is None:
            raise ValueError("FF-G2M needs the batch's incident edges (needs_edges).")
        tau = self.temperature
        return {
            "kd": kl_divergence(batch.student_logits, batch.teacher_logits),
            "low": low_frequency_term(batch),
            "high": high_frequency_term(batch, tau),
        }


__all__ = ["FrequencyDistillation", "high_frequency_term", "low_frequency_term"]
