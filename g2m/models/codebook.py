"""VQGraph's graph tokenizer: a GNN encoder whose node embeddings are vector-quantised.

Yang et al., ICLR 2024, "VQGraph: Rethinking Graph Representation Space for Bridging GNNs
and MLPs", Sec. 3. A GNN encodes node *i* into :math:`h_i \\in \\mathbb{R}^D`; a codebook
:math:`E = \\{e_1..e_K\\}` quantises it to its nearest code :math:`q_i = e_{k(i)}`, and
decoders read the quantised :math:`q_i` back into the node's features, its edges and its
class. Because the decoders see only :math:`q_i`, each code has to stand for a kind of local
substructure (features + neighbourhood + label), which is the "structure-aware codebook".

The quantiser is :class:`vector_quantize_pytorch.VectorQuantize` (EMA codebook updates,
commitment loss, straight-through gradients), used as is. Its codebook is frozen after the
codebook stage and handed to the student's objective (:mod:`g2m.losses.vq`).

Soft code assignments (Eq. 6 of the paper) use one similarity on both sides,
:math:`r_{ik} = \\mathrm{softmax}_k(s(h_i, e_k) / \\tau)` with :math:`s` the cosine
similarity (default, what the tokenizer quantises with) or the negative L2 distance.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor, nn
from torch_geometric.nn.models.basic_gnn import BasicGNN

from g2m.errors import ConfigError
from g2m.models.similarity import SIMILARITIES, code_similarity, soft_assignment
from g2m.models.teacher import GNNTeacher


@dataclass
class TokenizerOutput:
    """One forward pass over a graph (N nodes, D code dimension, K codes).

    Attributes:
        embedding: ``[N, D]`` encoder output :math:`h` (before quantisation).
        quantized: ``[N, D]`` :math:`q`, the chosen code per node (straight-through).
        codes: ``[N]`` index of the chosen code.
        commitment: scalar commitment loss :math:`\\|h - \\mathrm{sg}(q)\\|^2`, weighted.
    """

    embedding: Tensor
    quantized: Tensor
    codes: Tensor
    commitment: Tensor


class GraphTokenizer(nn.Module):
    """GNN encoder + :class:`VectorQuantize` + feature/structure/class decoders.

    Args:
        encoder: a PyG basic GNN whose ``out_channels`` is the code dimension D.
        num_features: F, reconstructed by a linear decoder from :math:`q`.
        num_classes: C, predicted by a linear head on :math:`q`.
        codebook_size: K.
        similarity: ``"cosine"`` (codes and embeddings L2-normalised, as in VQGraph) or
            ``"l2"`` (Euclidean nearest code).
        decay: EMA decay of the codebook updates.
        commitment_weight: weight of the commitment loss inside the quantiser.
        kmeans_init: initialise the codebook by k-means on the first batch.
        dead_code_threshold: re-seed codes used fewer times than this per step (0: off).
        self_loops: aggregate over each node's neighbourhood and itself (as the teacher).
        graph_classifier: None for a linear class head on each node's own code
            :math:`W_c q_i`; or a one-layer PyG GNN (D -> C) that classifies from the codes
            of the node's neighbourhood, as the released VQGraph teacher does (a graph
            convolution after the quantiser). Only the latter gives class logits that vary
            within a code, so only it makes the tokenizer usable as the soft-label teacher.
    """

    def __init__(
        self,
        encoder: BasicGNN,
        num_features: int,
        num_classes: int,
        codebook_size: int,
        similarity: str = "cosine",
        decay: float = 0.8,
        commitment_weight: float = 0.25,
        kmeans_init: bool = True,
        dead_code_threshold: float = 2.0,
        self_loops: bool = False,
        graph_classifier: BasicGNN | None = None,
    ):
        super().__init__()
        from vector_quantize_pytorch import VectorQuantize

        if similarity not in SIMILARITIES:
            raise ConfigError(
                f"similarity must be one of {list(SIMILARITIES)}, got '{similarity}'."
            )
        if codebook_size < 2:
            raise ConfigError(f"codebook size must be >= 2, got {codebook_size}.")
        dim = encoder.out_channels
        self.encoder = GNNTeacher(encoder, self_loops=self_loops)
        self.similarity = similarity
        self.quantizer = VectorQuantize(
            dim=dim,
            codebook_size=codebook_size,
            decay=decay,
            commitment_weight=commitment_weight,
            use_cosine_sim=similarity == "cosine",
            kmeans_init=kmeans_init,
            threshold_ema_dead_code=dead_code_threshold,
        )
        self.feature_decoder = nn.Linear(dim, num_features)
        self.structure_decoder = nn.Linear(dim, dim)
        self.classifier: nn.Module = (
            nn.Linear(dim, num_classes)
            if graph_classifier is None
            else GNNTeacher(graph_classifier, self_loops=self_loops)
        )

    def adjacency(self, edge_index: Tensor, num_nodes: int) -> Tensor:
        return self.encoder.adjacency(edge_index, num_nodes)

    @property
    def codebook(self) -> Tensor:
        """``[K, D]`` the current codes (unit-norm under cosine similarity)."""
        return self.quantizer.codebook.detach().reshape(-1, self.quantizer.codebook.size(-1))

    @property
    def selects_rows(self) -> bool:
        """Whether ``forward(..., rows=)`` may encode just those nodes: an encoder that
        selects rows, a linear class head (a graph head reads the neighbours' codes) and a
        codebook already initialised (k-means initialisation reads the nodes encoded)."""
        initted = getattr(getattr(self.quantizer, "_codebook", None), "initted", None)
        return (
            self.encoder.selects_rows
            and not isinstance(self.classifier, GNNTeacher)
            and initted is not None
            and bool(initted)
        )

    def forward(self, x: Tensor, adj_t: Tensor, rows: Tensor | None = None) -> TokenizerOutput:
        """Encode and quantise every node, or only ``rows`` (:attr:`selects_rows`)."""
        embedding = self.encoder(x, adj_t, rows=rows)
        # the quantiser's EMA and distances run in fp32, also under bf16 autocast
        with torch.autocast(x.device.type, enabled=False):
            quantized, codes, commitment = self.quantizer(embedding.float())
        return TokenizerOutput(embedding, quantized, codes, commitment.sum())

    def class_logits(self, quantized: Tensor, adj_t: Tensor) -> Tensor:
        """``[N, C]`` class logits from the codes: :math:`W_c q_i` (linear head) or a graph
        convolution over :math:`\\{q_j : j \\in \\mathcal{N}(i)\\}` (graph head)."""
        if isinstance(self.classifier, GNNTeacher):
            return self.classifier(quantized, adj_t)
        return self.classifier(quantized)

    def structure_logits(self, quantized: Tensor, source: Tensor, target: Tensor) -> Tensor:
        """Edge scores :math:`\\langle W q_i, W q_j \\rangle` for the given node pairs."""
        decoded = self.structure_decoder(quantized)
        return (decoded[source] * decoded[target]).sum(-1)


__all__ = [
    "SIMILARITIES",
    "GraphTokenizer",
    "TokenizerOutput",
    "code_similarity",
    "soft_assignment",
]
