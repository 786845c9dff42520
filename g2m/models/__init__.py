"""Teacher GNNs and the student MLP (plain ``nn.Module``s, no Lightning).

The student is importable with torch alone; the teacher (PyG) is imported on first use.
"""

from g2m.models.student import MLPStudent

__all__ = ["GNNTeacher", "MLPStudent", "predict_full_graph"]


def __getattr__(name: str):
    if name in ("GNNTeacher", "predict_full_graph"):
        from g2m.models import teacher

        return getattr(teacher, name)
    raise AttributeError(f"module 'g2m.models' has no attribute '{name}'")
