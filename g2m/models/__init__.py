"""Teacher GNNs and the student MLP (plain ``nn.Module``s, no Lightning)."""

from g2m.models.student import MLPStudent
from g2m.models.teacher import GNNTeacher, predict_full_graph

__all__ = ["GNNTeacher", "MLPStudent", "predict_full_graph"]
