"""Distillation objectives: one file per method, one interface (:mod:`g2m.losses.base`)."""

from g2m.losses.base import DistillationBatch, DistillationObjective
from g2m.losses.ffg2m import FrequencyDistillation
from g2m.losses.glnn import SoftLogitDistillation
from g2m.losses.supervised import SupervisedOnly

__all__ = [
    "DistillationBatch",
    "DistillationObjective",
    "FrequencyDistillation",
    "SoftLogitDistillation",
    "SupervisedOnly",
]
