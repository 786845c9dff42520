r"""KRD: knowledge-inspired reliable distillation (Wu et al., ICML 2023, "Quantifying the
Knowledge in GNNs for Reliable Distillation into MLPs", Sec. 4).

Not every node's teacher output is worth imitating. KRD measures how *reliable* a node's
knowledge is by how much the teacher's prediction entropy changes under feature noise,

.. math::
    \rho_i = \frac{\big|H\big(p^t_i(X + \varepsilon)\big) - H\big(p^t_i(X)\big)\big|}
        {\max_j |\,\cdot\,|_j}, \qquad \varepsilon \sim \mathcal{N}(0, \sigma^2),

(the ``reliability`` stage, :mod:`g2m.run.reliability_stage`), and lets a node also learn
from its *reliable neighbours*: each edge :math:`(i, j)` of the observed graph is kept with
probability :math:`s_j = 1 - \rho_j^{\alpha}`, freshly drawn every step, and

.. math::
    \mathcal{L}_{kd} = \frac{T^2}{|\mathcal{P}|} \sum_{(i, j) \in \mathcal{P}}
        \mathrm{KL}\big(\mathrm{softmax}(z^t_j/T) \,\|\, \mathrm{softmax}(z^s_i/T)\big),
    \qquad \mathcal{P} = \{(i, i)\} \cup \{\text{kept } (i, j)\}

over the batch's nodes *i*. For the first ``warmup_epochs`` epochs every edge is kept (the
released code starts sampling at epoch 50). The power :math:`\alpha` is learnt: after each
epoch from then on, the nodes are binned by :math:`\rho` (``bins``), the fraction of each
bin where the student's prediction agrees with the teacher's is min-max normalised, the
curve :math:`1 - x^a` is fitted to it by least squares, and
:math:`\alpha \leftarrow m\,\alpha + (1 - m)\,a` (``momentum``).

Deviations from the released code (LirongWu/KRD): mini-batches (the code is full-batch), so
edges are drawn per step, not per epoch; the agreement is counted on the training steps'
outputs over the epoch (dropout on) rather than on an extra evaluation pass over every node;
empty bins are left out of the fit (the code counts them as 0) and bins are fitted at their
centres (the code adds 0.05 to each bin's left edge whatever the number of bins).
"""

from __future__ import annotations

import math
from collections.abc import Mapping

import torch
import torch.nn.functional as F
from torch import Tensor

from g2m.errors import ConfigError, check_integer
from g2m.losses.base import DistillationBatch, DistillationObjective, check_temperature


def kl_per_row(student_logits: Tensor, teacher_logits: Tensor, temperature: float) -> Tensor:
    """``[M]``: :math:`\\mathrm{KL}(\\mathrm{softmax}(z^t/T) \\| \\mathrm{softmax}(z^s/T))` of
    each row (the teacher side without gradient)."""
    log_p_s = F.log_softmax(student_logits.float() / temperature, dim=-1)
    log_p_t = F.log_softmax(teacher_logits.detach().float() / temperature, dim=-1)
    return (log_p_t.exp() * (log_p_t - log_p_s)).sum(-1)


def fit_power(centres: Tensor, agreement: Tensor, start: float) -> float:
    """The :math:`a > 0` minimising :math:`\\sum_b (y_b - (1 - x_b^a))^2` over ``[K]`` bin
    centres :math:`x_b \\in (0, 1)` and agreements :math:`y_b` (golden-section search over
    :math:`\\log a \\in [-7, 7]`; ``start`` when fewer than two bins)."""
    if centres.numel() < 2:
        return start
    x, y = centres.double(), agreement.double()

    def cost(log_a: float) -> float:
        return float((y - (1 - x ** math.exp(log_a))).square().sum())

    low, high = -7.0, 7.0
    ratio = (math.sqrt(5) - 1) / 2
    for _ in range(80):
        a, b = high - ratio * (high - low), low + ratio * (high - low)
        if cost(a) < cost(b):
            high = b
        else:
            low = a
    return math.exp((low + high) / 2)


class ReliableDistillation(DistillationObjective):
    """``loss=krd``: one term, ``kd``, over the batch's nodes and their kept neighbours.

    Args:
        label_weight: :math:`\\lambda`, the weight of the label CE term.
        temperature: :math:`T > 0` (the paper's :math:`\\tau`).
        warmup_epochs: epochs that keep every edge before sampling starts (>= 0).
        initial_power: :math:`\\alpha` at the start (> 0). momentum: :math:`m \\in [0, 1]`.
        bins: the number of :math:`\\rho` bins of the fit (>= 2).
        weights: ``{"kd": w}``.
    """

    name = "krd"
    term_names = ("kd",)
    needs_edges = True
    needs_generator = True
    extra_stages = ("reliability",)

    def __init__(
        self,
        label_weight: float = 0.0,
        temperature: float = 1.0,
        warmup_epochs: int = 49,
        initial_power: float = 1.0,
        momentum: float = 0.99,
        bins: int = 50,
        weights: Mapping[str, float] | None = None,
    ):
        super().__init__(label_weight, weights if weights is not None else {"kd": 1.0})
        self.temperature = check_temperature(temperature)
        check_integer("loss.warmup_epochs", warmup_epochs, 0)
        check_integer("loss.bins", bins, 2)
        if not float(initial_power) > 0:
            raise ConfigError(f"loss.initial_power must be > 0, got {initial_power}.")
        if not 0.0 <= float(momentum) <= 1.0:
            raise ConfigError(f"loss.momentum must be in [0, 1], got {momentum}.")
        self.warmup_epochs, self.bins, self.momentum = int(warmup_epochs), int(bins), momentum
        # state across steps, in buffers: checkpoints carry it
        self.register_buffer("power", torch.tensor(float(initial_power), dtype=torch.float64))
        self.register_buffer("epochs_done", torch.tensor(0))
        self.register_buffer("agreeing", torch.zeros(self.bins))
        self.register_buffer("counted", torch.zeros(self.bins))
        self.register_buffer("reliability", torch.zeros(0), persistent=False)

    def attach_reliability(self, reliability: Tensor) -> None:
        """``[N]`` :math:`\\rho` of every node (NaN for held-out nodes), from the stage."""
        self.reliability = reliability.float().to(self.power.device)

    def keep_probability(self, nodes: Tensor) -> Tensor:
        """:math:`s_j = 1 - \\rho_j^\\alpha` of ``nodes``; 1 while warming up."""
        if int(self.epochs_done) < self.warmup_epochs:
            return torch.ones(nodes.shape, device=nodes.device)
        rho = self.reliability[nodes].nan_to_num(1.0)
        return (1 - rho.double() ** self.power).float().clamp(0, 1)

    def distillation_terms(self, batch: DistillationBatch) -> dict[str, Tensor]:
        if self.reliability.numel() == 0:
            raise RuntimeError("krd needs the reliability stage's scores (attach_reliability).")
        t = self.temperature
        own = kl_per_row(batch.student_logits, batch.teacher_logits, t)  # [B]
        i = batch.edge_position
        pairs = kl_per_row(batch.student_logits[i], batch.neighbour_teacher_logits, t)  # [E_b]
        keep_probability = self.keep_probability(batch.neighbour_nodes)
        keep = torch.bernoulli(keep_probability, generator=batch.generator)
        kd = (own.sum() + (keep * pairs).sum()) / (own.numel() + keep.sum())
        self.count_agreement(batch)
        return {"kd": kd * t**2}

    @torch.no_grad()
    def count_agreement(self, batch: DistillationBatch) -> None:
        """Add the batch's nodes to the epoch's per-bin counts of student-teacher agreement."""
        rho = self.reliability[batch.nodes]
        known = rho.isfinite()
        bin_of = (rho[known] * self.bins).long().clamp(0, self.bins - 1)
        agree = batch.student_logits.argmax(-1) == batch.teacher_logits.argmax(-1)
        self.counted += torch.bincount(bin_of, minlength=self.bins).to(self.counted.dtype)
        self.agreeing += torch.bincount(bin_of[agree[known]], minlength=self.bins).to(
            self.agreeing.dtype
        )

    def end_epoch(self) -> None:
        """Count the epoch; from the warm-up's end on, fit :math:`\\alpha` to its agreement."""
        self.epochs_done += 1
        if int(self.epochs_done) >= self.warmup_epochs:
            self.update_power()
        self.agreeing.zero_()
        self.counted.zero_()

    def update_power(self) -> None:
        filled = self.counted > 0
        if int(filled.sum()) < 2:
            return
        fraction = self.agreeing[filled] / self.counted[filled]
        spread = fraction.max() - fraction.min()
        if float(spread) <= 0:
            return  # a flat curve fits no power
        normalised = (fraction - fraction.min()) / spread
        centres = (torch.arange(self.bins, device=filled.device)[filled] + 0.5) / self.bins
        fitted = fit_power(centres.cpu(), normalised.cpu(), float(self.power))
        self.power.mul_(self.momentum).add_((1 - self.momentum) * fitted)


__all__ = ["ReliableDistillation", "fit_power", "kl_per_row"]
