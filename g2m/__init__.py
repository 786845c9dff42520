"""g2m: GNN-to-MLP knowledge distillation."""

__version__ = "0.1.0"
