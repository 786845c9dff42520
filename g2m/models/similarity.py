"""How node embeddings are matched to codes (VQGraph, Yang et al., ICLR 2024, Eq. 6).

Torch only: the student's objective uses it without the tokenizer's GNN.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from g2m.errors import ConfigError

SIMILARITIES = ("cosine", "l2")


def code_similarity(embedding: Tensor, codebook: Tensor, similarity: str) -> Tensor:
    """``[B, D]`` embeddings x ``[K, D]`` codes -> ``[B, K]`` similarities (higher = closer)."""
    embedding, codebook = embedding.float(), codebook.float()
    if similarity == "cosine":
        return F.normalize(embedding, dim=-1) @ F.normalize(codebook, dim=-1).T
    if similarity == "l2":
        return -torch.cdist(embedding, codebook)
    raise ConfigError(f"similarity must be one of {list(SIMILARITIES)}, got '{similarity}'.")


def soft_assignment(
    embedding: Tensor, codebook: Tensor, temperature: float, similarity: str = "cosine"
) -> Tensor:
    """:math:`r_{ik} = \\mathrm{softmax}_k(s(h_i, e_k)/\\tau)`; each row sums to 1."""
    return torch.softmax(code_similarity(embedding, codebook, similarity) / temperature, dim=-1)
