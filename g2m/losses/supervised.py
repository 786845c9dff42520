"""Label-only training: the plain-MLP baseline of every GNN-to-MLP table.

.. math::
    \\mathcal{L} = \\frac{1}{|\\mathcal{V}^L|}
        \\sum_{i \\in \\mathcal{V}^L} \\mathrm{CE}(y_i, \\hat y_i)

The student never sees a teacher, so the run trains none (``needs_teacher = False``); the
split is the same as every other objective's for the same dataset and seed, so it compares
with distilled students directly. This is the "MLP" column of GLNN (Zhang et al., ICLR 2022)
and VQGraph (Yang et al., ICLR 2024).
"""

from __future__ import annotations

from torch import Tensor

from g2m.losses.base import DistillationBatch, DistillationObjective


class SupervisedOnly(DistillationObjective):
    """``loss=supervised``: cross-entropy on the labelled nodes, no distillation term."""

    name = "supervised"
    term_names = ()
    needs_teacher = False

    def __init__(self) -> None:
        super().__init__(label_weight=1.0, weights={})

    def distillation_terms(self, batch: DistillationBatch) -> dict[str, Tensor]:
        return {}
