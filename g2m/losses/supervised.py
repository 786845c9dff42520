"""Label-only training: the plain-MLP baseline of every GNN-to-MLP table.

.. math::
    \\mathcal{L} = \\frac{1}{|\\mathcal{V}^L|}
        \\sum_{i \\in \\mathcal{V}^L} \\mathrm{CE}(y_i, \\hat y_i)

The student never sees the teacher's outputs (the teacher stage still runs, so the run's
metrics hold both and the comparison with distilled students uses the same splits). This is
the "MLP" column of GLNN (Zhang et al., ICLR 2022) and VQGraph (Yang et al., ICLR 2024).
"""

from __future__ import annotations

from torch import Tensor

from g2m.losses.base import DistillationBatch, DistillationObjective


class SupervisedOnly(DistillationObjective):
    """``loss=supervised``: cross-entropy on the labelled nodes, no distillation term."""

    name = "supervised"
    term_names = ()

    def __init__(self) -> None:
        super().__init__(label_weight=1.0, weights={})

    def distillation_terms(self, batch: DistillationBatch) -> dict[str, Tensor]:
        return {}
