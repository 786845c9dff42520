"""GLNN soft-logit distillation (Zhang et al., ICLR 2022, "Graph-less Neural Networks:
Teaching Old MLPs New Tricks via Distillation", Eq. 1).

.. math::
    \\mathcal{L} = \\lambda \\sum_{i \\in \\mathcal{V}^L} \\mathrm{CE}(y_i, \\hat y_i)
      + (1-\\lambda)\\,T^2 \\sum_{i \\in \\mathcal{V}} \\mathrm{KL}\\big(
        \\mathrm{softmax}(z^t_i/T) \\,\\|\\, \\mathrm{softmax}(z^s_i/T)\\big)

over the labelled nodes :math:`\\mathcal{V}^L` and all observed nodes :math:`\\mathcal{V}`
(each term is a mean over its nodes). :math:`z^t` are the teacher's stored logits.
"""

from __future__ import annotations

from collections.abc import Mapping

from torch import Tensor

from g2m.losses.base import DistillationBatch, DistillationObjective, check_temperature, softened_kl


class SoftLogitDistillation(DistillationObjective):
    """``loss=glnn``: one distillation term, ``kd``.

    Args:
        label_weight: :math:`\\lambda`, weight of the label CE term.
        temperature: :math:`T > 0`, softmax temperature of both distributions.
        weights: ``{"kd": w}``; keep 1 unless ablating.
    """

    name = "glnn"
    term_names = ("kd",)

    def __init__(
        self,
        label_weight: float = 0.0,
        temperature: float = 1.0,
        weights: Mapping[str, float] | None = None,
    ):
        super().__init__(label_weight, weights if weights is not None else {"kd": 1.0})
        self.temperature = check_temperature(temperature)

    def distillation_terms(self, batch: DistillationBatch) -> dict[str, Tensor]:
        return {"kd": softened_kl(batch.student_logits, batch.teacher_logits, self.temperature)}
