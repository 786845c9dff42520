r"""Plackett-Luce distillation (Bassam, Zhu and Bian, 2025, "PLD: A Choice-Theoretic List-Wise
Knowledge Distillation", arXiv:2506.12542).

The teacher's logits are read as the *worth* of each class: the student learns the teacher's
whole ranking of the classes through the Plackett-Luce likelihood of that ranking under the
student's logits. For a node with teacher-optimal permutation :math:`\pi` (the true class
first where the node is labelled and ``label_first`` is set, then the other classes by
descending teacher logit), student logits :math:`s` and teacher confidences
:math:`\alpha_k = \mathrm{softmax}(z^t/T)_{\pi_k}`,

.. math::
    \mathcal{L}_{pl} = \frac{1}{B} \sum_i \sum_{k=1}^{C} \alpha_{i,k} \Big(
        \log \sum_{j=k}^{C} \exp s_{i,\pi_j} - s_{i,\pi_k} \Big),

each term the negative log-probability that the student picks the class ranked *k* out of
those not yet picked, weighted by the teacher's confidence in it. The loss is convex in
:math:`s`, unchanged when a constant is added to a row of :math:`s`, and its first term alone
is the cross-entropy toward the top-ranked class. The inner sums are one reversed
``logcumsumexp`` over the sorted logits, so a batch costs one sort of its ``[B, C]`` teacher
logits.

The permutation and the confidence weights follow the paper's description; the temperature
only enters the weights :math:`\alpha` and the student's logits are used as they are (how
the paper treats a temperature was not checked against its text). The label CE term of the
base class stays available (``label_weight``, 0 by default: the paper's loss replaces CE).
"""

from __future__ import annotations

from collections.abc import Mapping

import torch
from torch import Tensor

from g2m.losses.base import DistillationBatch, DistillationObjective, check_temperature


def teacher_ranking(teacher_logits: Tensor, labels: Tensor | None = None) -> Tensor:
    """``[B, C]`` class ids by descending teacher logit; where ``labels`` is given (``[B]``,
    -1 for none) that class is put first."""
    key = teacher_logits.detach().float()
    if labels is not None:
        first = torch.zeros_like(key, dtype=torch.bool)
        has = labels >= 0
        first[has.nonzero(as_tuple=True)[0], labels[has]] = True
        key = key.masked_fill(first, float("inf"))
    return key.argsort(dim=-1, descending=True, stable=True)


def plackett_luce_loss(student_logits: Tensor, ranking: Tensor, weights: Tensor) -> Tensor:
    """Mean over rows of :math:`\\sum_k w_k (\\log\\sum_{j \\ge k} e^{s_{\\pi_j}} - s_{\\pi_k})`
    for the ``[B, C]`` ranking :math:`\\pi` and its ``[B, C]`` per-rank weights."""
    ranked = student_logits.float().gather(-1, ranking)
    tail = torch.logcumsumexp(ranked.flip(-1), dim=-1).flip(-1)  # log sum_{j >= k} e^{s_j}
    return (weights * (tail - ranked)).sum(-1).mean()


class PlackettLuceDistillation(DistillationObjective):
    """``loss=pld``: one term, ``pl``.

    Args:
        label_weight: :math:`\\lambda`, weight of the label CE term.
        temperature: :math:`T > 0` of the teacher softmax that gives the weights :math:`\\alpha`.
        label_first: rank the true class first on labelled nodes (the paper's
            teacher-optimal permutation); False ranks by the teacher alone everywhere.
        weights: ``{"pl": w}``.
    """

    name = "pld"
    term_names = ("pl",)

    def __init__(
        self,
        label_weight: float = 0.0,
        temperature: float = 1.0,
        label_first: bool = True,
        weights: Mapping[str, float] | None = None,
    ):
        super().__init__(label_weight, weights if weights is not None else {"pl": 1.0})
        self.temperature = check_temperature(temperature)
        self.label_first = bool(label_first)

    def distillation_terms(self, batch: DistillationBatch) -> dict[str, Tensor]:
        teacher = batch.teacher_logits.detach().float()
        labels = None
        if self.label_first:
            labels = torch.where(batch.labelled, batch.labels, torch.full_like(batch.labels, -1))
        ranking = teacher_ranking(teacher, labels)
        alpha = torch.softmax(teacher / self.temperature, dim=-1).gather(-1, ranking)
        return {"pl": plackett_luce_loss(batch.student_logits, ranking, alpha)}


__all__ = ["PlackettLuceDistillation", "plackett_luce_loss", "teacher_ranking"]
