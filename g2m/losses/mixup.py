r"""Mixup in distillation: the student also imitates the teacher between nodes (mixup:
Zhang et al., ICLR 2018, "mixup: Beyond Empirical Risk Minimization"; mixed inputs with the
teacher's outputs as targets, as in Liang et al., ICLR 2021, "MixKD: Towards Efficient
Distillation of Large-scale Language Models").

For a batch of B nodes, one coefficient :math:`\lambda \sim \mathrm{Beta}(a, a)` and a random
permutation :math:`\pi` of the batch give mixed features and, mixed the same way, the
teacher's probabilities as the target,

.. math::
    \tilde x_i = \lambda x_i + (1-\lambda) x_{\pi(i)}, \qquad
    \tilde p^t_i = \lambda\,p^t_i + (1-\lambda)\,p^t_{\pi(i)}, \qquad
    p^t = \mathrm{softmax}(z^t / T),

    \mathcal{L}_{mix} = \frac{T^2}{B} \sum_i
        \mathrm{KL}\big(\tilde p^t_i \,\|\, \mathrm{softmax}(f(\tilde x_i) / T)\big),

next to GLNN's term on the un-mixed batch, :math:`\mathcal{L}_{kd} = T^2\,\mathrm{KL}(p^t \|
p^s)`. The student's outputs :math:`f(\tilde x)` come from one more forward pass that the
training system runs because the objective declares ``needs_mixed_inputs``; :math:`(\pi,
\lambda)` come from :meth:`MixupDistillation.draw_mixing`, on a generator the system owns
(seeded from the run's seed and restored on resume). As :math:`a \to 0`, :math:`\lambda`
goes to 0 or 1 and :math:`\mathcal{L}_{mix}` to :math:`\mathcal{L}_{kd}` (of the same or the
permuted rows); ``loss.weights.mix=0`` is GLNN.

:math:`\mathrm{Beta}(a, a)` is drawn as :math:`G_1 / (G_1 + G_2)` with
:math:`G_k \sim \mathrm{Gamma}(a)` (Marsaglia and Tsang, 2000, ACM TOMS 26(3); for
:math:`a < 1` through :math:`G(a) = G(a+1)\,U^{1/a}`), in log space, because
``torch.distributions`` takes no generator.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

import torch
import torch.nn.functional as F
from torch import Tensor

from g2m.errors import ConfigError
from g2m.losses.base import DistillationBatch, DistillationObjective, check_temperature, softened_kl


def log_gamma_sample(shape: float, generator: torch.Generator) -> float:
    """:math:`\\log G`, :math:`G \\sim \\mathrm{Gamma}(shape, 1)` (Marsaglia-Tsang)."""
    boost = 0.0
    if shape < 1.0:  # G(a) = G(a + 1) U^(1/a), in logs: no underflow for a tiny a
        u = torch.rand((), generator=generator, dtype=torch.float64).item()
        boost = math.log(max(u, 1e-300)) / shape
        shape += 1.0
    d = shape - 1.0 / 3.0
    c = 1.0 / math.sqrt(9.0 * d)
    while True:
        x = torch.randn((), generator=generator, dtype=torch.float64).item()
        v = (1.0 + c * x) ** 3
        if v <= 0:
            continue
        u = torch.rand((), generator=generator, dtype=torch.float64).item()
        if math.log(max(u, 1e-300)) < 0.5 * x * x + d - d * v + d * math.log(v):
            return math.log(d * v) + boost


def symmetric_beta_sample(concentration: float, generator: torch.Generator) -> float:
    """:math:`\\lambda \\sim \\mathrm{Beta}(a, a)` as :math:`G_1/(G_1+G_2)`."""
    first = log_gamma_sample(concentration, generator)
    second = log_gamma_sample(concentration, generator)
    return 1.0 / (1.0 + math.exp(min(second - first, 700.0)))


def mixed_teacher_probabilities(
    teacher_logits: Tensor, index: Tensor, weight: Tensor, temperature: float
) -> Tensor:
    """``[B, C]``: :math:`\\lambda p^t_i + (1-\\lambda) p^t_{\\pi(i)}`, no gradient."""
    p = torch.softmax(teacher_logits.detach().float() / temperature, dim=-1)
    return weight * p + (1.0 - weight) * p[index]


class MixupDistillation(DistillationObjective):
    """``loss=mixup``: terms ``kd`` (GLNN, un-mixed) and ``mix`` (on mixed features).

    Args:
        label_weight: :math:`\\lambda_{CE}`, weight of the label CE term.
        temperature: :math:`T > 0` of every softmax (terms scaled by :math:`T^2`).
        alpha: :math:`a > 0`, the concentration of :math:`\\mathrm{Beta}(a, a)`.
        weights: ``{"kd": w_kd, "mix": w_mix}``.
    """

    name = "mixup"
    term_names = ("kd", "mix")
    needs_mixed_inputs = True

    def __init__(
        self,
        label_weight: float = 0.0,
        temperature: float = 1.0,
        alpha: float = 0.4,
        weights: Mapping[str, float] | None = None,
    ):
        default = {"kd": 1.0, "mix": 1.0}
        super().__init__(label_weight, weights if weights is not None else default)
        self.temperature = check_temperature(temperature)
        if not float(alpha) > 0:
            raise ConfigError(f"loss.alpha (the Beta concentration) must be > 0, got {alpha}.")
        self.alpha = float(alpha)

    def draw_mixing(self, size: int, generator: torch.Generator) -> tuple[Tensor, Tensor]:
        index = torch.randperm(size, generator=generator)
        weight = torch.tensor(symmetric_beta_sample(self.alpha, generator))
        return index, weight

    def distillation_terms(self, batch: DistillationBatch) -> dict[str, Tensor]:
        if batch.mixed_student_logits is None:
            raise ValueError("mixup needs the student's outputs on mixed features.")
        t = self.temperature
        target = mixed_teacher_probabilities(
            batch.teacher_logits, batch.mix_index, batch.mix_weight, t
        )
        log_p_s = F.log_softmax(batch.mixed_student_logits.float() / t, dim=-1)
        mix = F.kl_div(log_p_s, target, reduction="batchmean") * t**2
        kd = softened_kl(batch.student_logits, batch.teacher_logits, t)
        return {"kd": kd, "mix": mix}


__all__ = [
    "MixupDistillation",
    "log_gamma_sample",
    "mixed_teacher_probabilities",
    "symmetric_beta_sample",
]
