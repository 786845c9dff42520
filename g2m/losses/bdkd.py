r"""BD-KD: balanced forward and reverse KL (Amara et al., BMVC 2023, "BD-KD: Balancing the
Divergences for Online Knowledge Distillation", arXiv:2212.12965).

With :math:`p^t_i = \mathrm{softmax}(z^t_i/T)`, :math:`p^s_i = \mathrm{softmax}(z^s_i/T)` and
the entropy :math:`H(p) = -\sum_c p_c \log p_c`, each node's student loss mixes the
mode-covering forward KL and the mode-seeking reverse KL with per-node weights set by which
of the two is the more confident,

.. math::
    \mathcal{L}_{fwd} = \frac{T^2}{B} \sum_i \mu^f_i\,\mathrm{KL}(p^t_i \,\|\, p^s_i),
    \qquad
    \mathcal{L}_{rev} = \frac{T^2}{B} \sum_i \mu^r_i\,\mathrm{KL}(p^s_i \,\|\, p^t_i),

    (\mu^f_i, \mu^r_i) = \begin{cases}
        (1, \delta) & H(p^s_i) > H(p^t_i) \text{ (the student is the less confident)} \\
        (\delta, 1) & \text{otherwise,}
    \end{cases}

with the balance :math:`\delta \ge 1`: a student less sure than its teacher is pulled to
the teacher's mode (reverse KL, which sharpens it), a student surer than its teacher is
spread over the teacher's support (forward KL, which softens it). The weights are computed
without gradient. :math:`\delta = 1` is the plain sum of both divergences (Jeffreys); the
ablations are overrides (``loss.weights.reverse=0``: entropy-weighted forward KL only).

Deviations, stated plainly: BD-KD is an *online* method in which the teacher trains too
(and is regularised by a reverse KL of its own); here the teacher is fixed and stored, so
only the student's objective applies. The exact form of the sample-wise weights could not
be checked against the paper's text while writing this; the rule above (a constant
:math:`\delta` on the divergence chosen by the entropy comparison) is our reading of its
description ("sample-wise weighting of forward and reverse KL" balanced by the two models'
confidence), and :math:`\delta` is ours to tune.
"""

from __future__ import annotations

from collections.abc import Mapping

import torch
import torch.nn.functional as F
from torch import Tensor

from g2m.errors import ConfigError
from g2m.losses.base import DistillationBatch, DistillationObjective, check_temperature


def row_kl(log_p: Tensor, log_q: Tensor) -> Tensor:
    """``[B]``: :math:`\\mathrm{KL}(p_i \\| q_i)` per row, from log-probabilities."""
    return (log_p.exp() * (log_p - log_q)).sum(-1)


def row_entropy(log_p: Tensor) -> Tensor:
    """``[B]``: :math:`H(p_i)` per row, from log-probabilities."""
    return -(log_p.exp() * log_p).sum(-1)


def balance_weights(log_p_s: Tensor, log_p_t: Tensor, balance: float) -> tuple[Tensor, Tensor]:
    """``([B], [B])``: :math:`(\\mu^f, \\mu^r)`, without gradient."""
    with torch.no_grad():
        student_less_sure = row_entropy(log_p_s) > row_entropy(log_p_t)
        one = torch.ones_like(student_less_sure, dtype=log_p_s.dtype)
        boosted = torch.full_like(one, balance)
        forward = torch.where(student_less_sure, one, boosted)
        reverse = torch.where(student_less_sure, boosted, one)
    return forward, reverse


class BalancedDivergence(DistillationObjective):
    """``loss=bdkd``: terms ``forward`` (weighted KL(teacher || student)) and ``reverse``
    (weighted KL(student || teacher)).

    Args:
        label_weight: :math:`\\lambda`, weight of the label CE term.
        temperature: :math:`T > 0` of both softmaxes (terms scaled by :math:`T^2`).
        balance: :math:`\\delta \\ge 1`, the weight of the divergence the entropy rule picks.
        weights: ``{"forward": w_f, "reverse": w_r}``.
    """

    name = "bdkd"
    term_names = ("forward", "reverse")

    def __init__(
        self,
        label_weight: float = 0.0,
        temperature: float = 1.0,
        balance: float = 2.0,
        weights: Mapping[str, float] | None = None,
    ):
        default = {"forward": 1.0, "reverse": 1.0}
        super().__init__(label_weight, weights if weights is not None else default)
        self.temperature = check_temperature(temperature)
        if not float(balance) >= 1.0:
            raise ConfigError(f"loss.balance (delta) must be >= 1, got {balance}.")
        self.balance = float(balance)

    def distillation_terms(self, batch: DistillationBatch) -> dict[str, Tensor]:
        t = self.temperature
        log_p_s = F.log_softmax(batch.student_logits.float() / t, dim=-1)
        log_p_t = F.log_softmax(batch.teacher_logits.detach().float() / t, dim=-1)
        mu_f, mu_r = balance_weights(log_p_s, log_p_t, self.balance)
        scale = t**2
        return {
            "forward": (mu_f * row_kl(log_p_t, log_p_s)).mean() * scale,
            "reverse": (mu_r * row_kl(log_p_s, log_p_t)).mean() * scale,
        }


__all__ = ["BalancedDivergence", "balance_weights", "row_entropy", "row_kl"]
