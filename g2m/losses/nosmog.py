r"""NOSMOG (Tian et al., ICLR 2023, "Learning MLPs on Graphs: A Unified View of
Effectiveness, Robustness, and Efficiency", Sec. 4).

Three additions to GLNN's soft-label distillation:

1. **Position features** (Sec. 4.1): the student reads :math:`[x_i, p_i]`, a node's
   features and its DeepWalk position, computed by the ``positions`` stage
   (:mod:`g2m.run.positions_stage`); this objective only declares the stage.
2. **Representation similarity distillation** (Sec. 4.2): the student's last hidden layer
   :math:`h^s_i`, through a trainable projection :math:`\tilde h^s_i = \mathrm{ReLU}(W h^s_i
   + b)`, should relate the batch's nodes to each other as the teacher's embeddings
   :math:`h^t_i` do:

   .. math::
       \mathcal{L}_{sim} = \frac{1}{B^2} \big\| H^t {H^t}^\top
           - \tilde H^s {\tilde H^s}^\top \big\|_F^2 .

3. **Adversarial feature augmentation** (Sec. 4.3): inputs perturbed by projected gradient
   ascent on the student's loss,

   .. math::
       \delta^{(0)} \sim U(-\epsilon, \epsilon), \qquad
       \delta^{(k+1)} = \Pi_{\|\delta\|_\infty \le \epsilon}\big(\delta^{(k)}
           + \tfrac{\epsilon}{4}\,\mathrm{sign}\,\nabla_\delta \ell(x + \delta^{(k)})\big),

   ``attack_steps`` times (5 in the paper's code), and the student trained on them too:
   :math:`\mathcal{L}_{adv} = \ell(x + \delta)`, with :math:`\ell = \lambda\,\mathrm{CE}
   + (1-\lambda)\,T^2\,\mathrm{KL}(p^t \| p^s)`, the loss of a GLNN batch.

The total is g2m's :math:`\lambda\,\mathrm{CE} + (1-\lambda)(w_{kd}\,\mathcal{L}_{kd} +
w_{sim}\,\mathcal{L}_{sim} + w_{adv}\,\mathcal{L}_{adv})`; ``weights.similarity`` is the
paper's ``feat_distill_weight`` and ``weights.adversarial`` its fixed 0.1.

Deviations from the released code (meettyj/NOSMOG), each to fit g2m's one student loop:
labelled and teacher-labelled nodes share a batch (the code trains them in two passes
weighted :math:`\lambda` and :math:`1-\lambda`, as g2m's GLNN also does not); the student's
embedding is its last hidden layer after activation and dropout (the code: before its
normalisation), the teacher's the input of its output layer (the code: the last hidden
layer's output before normalisation); the projection has no dropout; the position
features' DeepWalk is g2m's own (:mod:`g2m.models.positions`: in-batch negative sampling,
no hierarchical softmax) rather than gensim's. The student's MLP settings are g2m's tuned
GLNN ones, not the paper's per-dataset ones.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

import torch
from torch import Tensor, nn

from g2m.errors import ConfigError, check_integer
from g2m.losses.base import (
    DistillationBatch,
    DistillationObjective,
    check_temperature,
    label_cross_entropy,
    softened_kl,
)


def representation_similarity(student: Tensor, teacher: Tensor) -> Tensor:
    """:math:`\\frac{1}{B^2}\\|H^t {H^t}^\\top - H^s {H^s}^\\top\\|_F^2` for ``[B, D_s]``
    and ``[B, D_t]`` representations of the same nodes (the teacher side without gradient)."""
    teacher = teacher.detach().float()
    student = student.float()
    return (teacher @ teacher.T - student @ student.T).square().mean()


class NOSMOGDistillation(DistillationObjective):
    """``loss=nosmog``: terms ``kd``, ``similarity`` and ``adversarial`` (module docstring).

    Args:
        label_weight: :math:`\\lambda`, the weight of the label CE term.
        temperature: :math:`T > 0` of the soft-label KL (in ``kd`` and ``adversarial``).
        epsilon: :math:`\\epsilon \\ge 0`, the perturbation's bound per input column.
        attack_steps: gradient-ascent steps of the perturbation (>= 1).
        weights: ``{"kd": w, "similarity": w, "adversarial": w}``.
    """

    name = "nosmog"
    term_names = ("kd", "similarity", "adversarial")
    needs_embeddings = True
    extra_stages = ("positions",)
    perturbs_inputs = True
    needs_generator = True

    def __init__(
        self,
        label_weight: float = 0.0,
        temperature: float = 1.0,
        epsilon: float = 0.04,
        attack_steps: int = 5,
        weights: Mapping[str, float] | None = None,
    ):
        default = {"kd": 1.0, "similarity": 0.1, "adversarial": 0.1}
        super().__init__(label_weight, weights if weights is not None else default)
        self.temperature = check_temperature(temperature)
        if not float(epsilon) >= 0:
            raise ConfigError(f"loss.epsilon must be >= 0, got {epsilon}.")
        check_integer("loss.attack_steps", attack_steps, 1)
        self.epsilon, self.attack_steps = float(epsilon), int(attack_steps)
        self.projection: nn.Module | None = None

    def attach_student(self, student: nn.Module) -> None:
        """The projection :math:`W` of the student's hidden layer (trained, never shipped)."""
        width = student.embedding_channels
        self.projection = nn.Sequential(nn.Linear(width, width), nn.ReLU())

    def batch_loss(self, logits: Tensor, batch: DistillationBatch) -> Tensor:
        """:math:`\\ell`: GLNN's loss of the batch's targets at the student outputs ``logits``."""
        at = DistillationBatch(logits, batch.teacher_logits, batch.labels, batch.labelled)
        kd = softened_kl(logits, batch.teacher_logits, self.temperature)
        return self.label_weight * label_cross_entropy(at) + (1 - self.label_weight) * kd

    def perturb(
        self, inputs: Tensor, student: Callable[[Tensor], Tensor], batch: DistillationBatch
    ) -> Tensor:
        """:math:`x + \\delta` after ``attack_steps`` steps of projected gradient ascent."""
        eps = self.epsilon
        draw = torch.rand(inputs.shape, generator=batch.generator, device=inputs.device)
        delta = (2 * draw - 1).to(inputs.dtype) * eps
        for _ in range(self.attack_steps):
            delta.requires_grad_(True)
            loss = self.batch_loss(student(inputs + delta), batch)
            (grad,) = torch.autograd.grad(loss, delta)  # the student's parameters collect none
            delta = (delta.detach() + eps / 4 * grad.sign()).clamp(-eps, eps)
        return (inputs + delta).detach()

    def distillation_terms(self, batch: DistillationBatch) -> dict[str, Tensor]:
        if self.projection is None:
            raise RuntimeError("NOSMOGDistillation.attach_student() must run before training.")
        if batch.perturbed_student_logits is None:
            raise ValueError("nosmog needs the student's outputs at perturbed inputs.")
        kd = softened_kl(batch.student_logits, batch.teacher_logits, self.temperature)
        projected = self.projection(batch.student_embedding.float())
        similarity = representation_similarity(projected, batch.teacher_embedding)
        adversarial = self.batch_loss(batch.perturbed_student_logits, batch)
        return {"kd": kd, "similarity": similarity, "adversarial": adversarial}


__all__ = ["NOSMOGDistillation", "representation_similarity"]
