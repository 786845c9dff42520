"""The interface every distillation objective implements.

An objective turns a batch of student outputs plus the teacher's *stored* targets into a
dict of **named, unweighted** loss terms. The weights live in config, and the total is

.. math::
    \\mathcal{L} = \\lambda\\,\\mathcal{L}_{CE}
        + (1 - \\lambda) \\sum_k w_k\\,\\mathcal{L}_k,

with :math:`\\mathcal{L}_{CE}` the cross-entropy on the labelled nodes of the batch and
:math:`\\mathcal{L}_k` the objective's distillation terms (``term_names``). An ablation is a
config override (``loss.weights.kd=0``), never a mode flag.

Objectives *declare* what they need beyond logits (class attributes ``needs_edges`` and
``needs_embeddings``; the training system provides exactly that) and the stages they add
between teacher and student (``extra_stages``: config keys of :class:`g2m.run.extra.ExtraStage`
nodes, e.g. VQGraph's ``("codebook",)``), which the pipeline runs without knowing them.

Two more declarations, both off by default (and then nothing of them runs):

- ``prepares_targets``: the student stage calls :meth:`DistillationObjective.prepare_targets`
  once, before training, with the stored teacher logits and the *observed* graph's edges
  (no edge touches a held-out node), and distils what it returns (Propagate & Distill
  propagates the teacher's soft labels over the graph).
- ``needs_mixed_inputs``: each training step also runs the student on mixed features
  :math:`\\lambda x_i + (1-\\lambda) x_{\\pi(i)}`, with :math:`(\\pi, \\lambda)` drawn by
  :meth:`DistillationObjective.draw_mixing` from a generator the training system owns (seeded,
  saved in checkpoints), and hands the objective those logits (mixup distillation).
- ``perturbs_inputs``: each training step the objective also gets the student's outputs at
  inputs it perturbed itself, :meth:`DistillationObjective.perturb`, given the student as a
  function of its inputs (NOSMOG's adversarial feature augmentation: projected gradient
  ascent on the inputs).
- ``needs_generator``: the batch carries a seeded generator on the batch's device, owned by
  the training system and kept in its checkpoints (KRD's sampling of neighbours).

Three hooks, no-ops here: :meth:`DistillationObjective.attach_student` (once, with the
freshly built student, after the run is seeded: build parts that depend on its widths),
:meth:`DistillationObjective.end_epoch` (after every training epoch: update state kept
across steps, in buffers so that checkpoints carry it) and
:meth:`DistillationObjective.perturb`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import ClassVar

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from g2m.errors import ConfigError


@dataclass
class DistillationBatch:
    """What an objective sees for B nodes (shapes use B batch nodes, C classes, D dim).

    Attributes:
        student_logits: ``[B, C]`` student outputs (with gradient).
        teacher_logits: ``[B, C]`` stored teacher logits (no gradient); None for an objective
            that ``needs_teacher=False``.
        labels: ``[B]`` class ids; only meaningful where ``labelled``.
        labelled: ``[B]`` bool, the training nodes whose label may be used.
        student_embedding: ``[B, D_s]`` student hidden layer, if ``needs_embeddings``.
        teacher_embedding: ``[B, D_t]`` stored teacher embedding, if ``needs_embeddings``.
        edge_position: ``[E_b]`` for each edge incident to the batch (self-loops excluded),
            the row of its batch node ``i``; edges come grouped by ``i``. If ``needs_edges``.
        neighbour_student_logits: ``[E_b, C]`` student logits at each edge's other end ``j``
            (with gradient; the same forward pass as ``student_logits``), if ``needs_edges``.
        neighbour_teacher_logits: ``[E_b, C]`` stored teacher logits at ``j``, if ``needs_edges``.
        mixed_student_logits: ``[B, C]`` student outputs at the mixed features
            :math:`\\lambda x_b + (1-\\lambda) x_{\\pi(b)}` (with gradient), if
            ``needs_mixed_inputs``.
        mix_index: ``[B]`` the partner row :math:`\\pi(b)` within the batch, if
            ``needs_mixed_inputs``.
        mix_weight: ``[]`` the mixing coefficient :math:`\\lambda`, if ``needs_mixed_inputs``.
        nodes: ``[B]`` the batch's global node ids.
        neighbour_nodes: ``[E_b]`` the global id of each edge's other end ``j``, if
            ``needs_edges``.
        perturbed_student_logits: ``[B, C]`` student outputs at the inputs
            :meth:`DistillationObjective.perturb` returned (with gradient), if
            ``perturbs_inputs``.
        generator: a seeded generator on the batch's device, if ``needs_generator``.
    """

    student_logits: Tensor
    teacher_logits: Tensor | None
    labels: Tensor
    labelled: Tensor
    student_embedding: Tensor | None = None
    teacher_embedding: Tensor | None = None
    edge_position: Tensor | None = None
    neighbour_student_logits: Tensor | None = None
    neighbour_teacher_logits: Tensor | None = None
    mixed_student_logits: Tensor | None = None
    mix_index: Tensor | None = None
    mix_weight: Tensor | None = None
    nodes: Tensor | None = None
    neighbour_nodes: Tensor | None = None
    perturbed_student_logits: Tensor | None = None
    generator: torch.Generator | None = None


class DistillationObjective(nn.Module):
    """Base class: label cross-entropy plus the subclass's distillation terms.

    Args:
        label_weight: :math:`\\lambda \\in [0, 1]`, the weight of the label CE term.
        weights: :math:`w_k \\ge 0` for each of ``term_names``.
    """

    name: ClassVar[str] = "base"
    term_names: ClassVar[tuple[str, ...]] = ()
    needs_edges: ClassVar[bool] = False
    needs_embeddings: ClassVar[bool] = False
    extra_stages: ClassVar[tuple[str, ...]] = ()
    needs_teacher: ClassVar[bool] = True  # False: the run trains no teacher (labels only)
    prepares_targets: ClassVar[bool] = False  # True: prepare_targets runs once before training
    needs_mixed_inputs: ClassVar[bool] = False  # True: one more forward on mixed features
    perturbs_inputs: ClassVar[bool] = False  # True: one more forward on perturbed inputs
    needs_generator: ClassVar[bool] = False  # True: the batch carries a seeded generator

    def __init__(self, label_weight: float, weights: Mapping[str, float]):
        super().__init__()
        if not 0.0 <= float(label_weight) <= 1.0:
            raise ConfigError(f"loss.label_weight (lambda) must be in [0, 1], got {label_weight}.")
        weights = dict(weights)
        if set(weights) != set(self.term_names):
            raise ConfigError(
                f"loss.weights for '{self.name}' must name exactly {list(self.term_names)}, "
                f"got {sorted(weights)}."
            )
        if any(float(w) < 0 for w in weights.values()):
            raise ConfigError(f"loss.weights must be >= 0, got {weights}.")
        self.label_weight = float(label_weight)
        self.weights = {k: float(v) for k, v in weights.items()}

    def distillation_terms(self, batch: DistillationBatch) -> dict[str, Tensor]:
        """Return ``{term: scalar}`` for every name in ``term_names``, unweighted."""
        raise NotImplementedError

    def prepare_targets(self, logits: Tensor, edge_index: Tensor, num_nodes: int) -> Tensor:
        """The ``[N, C]`` logits to distil, from the stored ``[N, C]`` teacher logits (NaN rows
        for held-out nodes) and the ``[2, E]`` observed edges; called once by the student stage
        when ``prepares_targets`` is set. The identity here."""
        return logits

    def draw_mixing(self, size: int, generator: torch.Generator) -> tuple[Tensor, Tensor]:
        """``(index [size], weight [])``: the partner of each batch row and the coefficient
        :math:`\\lambda`, drawn from ``generator`` (CPU); used when ``needs_mixed_inputs``."""
        raise NotImplementedError(f"objective '{self.name}' mixes no inputs.")

    def perturb(
        self, inputs: Tensor, student: Callable[[Tensor], Tensor], batch: DistillationBatch
    ) -> Tensor:
        """``[B, F]`` perturbed copies of the batch's ``inputs`` (no gradient), given the
        ``student`` (inputs to logits; its parameters must collect no gradient here) and the
        batch (its targets; ``batch.generator`` set); used when ``perturbs_inputs``, which
        implies ``needs_generator``."""
        raise NotImplementedError(f"objective '{self.name}' perturbs no inputs.")

    def attach_student(self, student: nn.Module) -> None:
        """Called once before training with the freshly built student (widths known, the
        run seeded): build trainable parts here; they train with the student, never ship."""

    def end_epoch(self) -> None:
        """Called after every training epoch (state the objective keeps across steps)."""

    def forward(self, batch: DistillationBatch) -> dict[str, Tensor]:
        """All terms, unweighted: ``ce`` plus the distillation terms."""
        return {"ce": label_cross_entropy(batch), **self.distillation_terms(batch)}

    def combine(self, terms: Mapping[str, Tensor]) -> Tensor:
        """The weighted total :math:`\\mathcal{L}` from the output of :meth:`forward`."""
        distill = sum(self.weights[k] * terms[k] for k in self.term_names)
        return self.label_weight * terms["ce"] + (1.0 - self.label_weight) * distill


def label_cross_entropy(batch: DistillationBatch) -> Tensor:
    """Mean CE over the labelled nodes of the batch (0, with gradient, when there are none).

    Computed with a mask rather than by selecting the labelled rows, so a GPU step never
    waits for the host to learn how many there are.
    """
    # unlabelled nodes (y = -1) are masked out; clamping keeps their ids in range
    labels = batch.labels.clamp(min=0)
    ce = F.cross_entropy(batch.student_logits.float(), labels, reduction="none")
    mask = batch.labelled.to(ce.dtype)
    return (ce * mask).sum() / mask.sum().clamp(min=1.0)


def kl_divergence(
    student_logits: Tensor, teacher_logits: Tensor, temperature: float = 1.0
) -> Tensor:
    r""":math:`\mathrm{KL}(\mathrm{softmax}(z_t/T) \| \mathrm{softmax}(z_s/T))`, mean over rows.

    Both sides are passed as log-probabilities (``log_target=True``), the form
    :func:`torch.nn.functional.kl_div` expects; the teacher side carries no gradient.
    """
    log_p_s = F.log_softmax(student_logits.float() / temperature, dim=-1)
    log_p_t = F.log_softmax(teacher_logits.detach().float() / temperature, dim=-1)
    return F.kl_div(log_p_s, log_p_t, reduction="batchmean", log_target=True)


def softened_kl(student_logits: Tensor, teacher_logits: Tensor, temperature: float) -> Tensor:
    r""":math:`T^2\,\mathrm{KL}(\mathrm{softmax}(z_t/T) \| \mathrm{softmax}(z_s/T))`, node mean.

    The :math:`T^2` factor (Hinton et al., 2015) keeps gradient magnitudes comparable across
    temperatures; see :func:`kl_divergence`.
    """
    return kl_divergence(student_logits, teacher_logits, temperature) * temperature**2


def check_temperature(temperature: float, key: str = "loss.temperature") -> float:
    if not float(temperature) > 0:
        raise ConfigError(f"{key} must be > 0, got {temperature}.")
    return float(temperature)


__all__ = [
    "DistillationBatch",
    "DistillationObjective",
    "check_temperature",
    "kl_divergence",
    "label_cross_entropy",
    "softened_kl",
]
