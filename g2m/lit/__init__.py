"""Thin Lightning systems around the plain models: teacher pretraining, student distillation."""

from g2m.lit.student import StudentSystem
from g2m.lit.teacher import TeacherSystem

__all__ = ["StudentSystem", "TeacherSystem"]
