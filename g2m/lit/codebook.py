"""LightningModule of VQGraph's codebook stage: train the graph tokenizer full-graph.

The tokenizer (:class:`g2m.models.codebook.GraphTokenizer`) is trained on the observed
graph with (Yang et al., ICLR 2024, Sec. 3.2)

.. math::
    \\mathcal{L} = w_{ce}\\,\\mathrm{CE}(W_c q_i, y_i)_{i \\in \\mathcal{V}^L}
      + w_{feat}\\,\\|W_f q_i - x_i\\|^2
      + w_{struct}\\,\\mathcal{L}_{edge}
      + \\beta\\,\\|h_i - \\mathrm{sg}(q_i)\\|^2 ,

where the codebook itself follows an EMA of the embeddings assigned to each code.

**Structure reconstruction in O(E).** The released code rebuilds the dense N x N adjacency
from :math:`q q^\\top` (O(N^2) memory: 48 GB for A-computer in fp32, impossible at
products scale). Here it is a link-prediction loss over *sampled* pairs,

.. math::
    \\mathcal{L}_{edge} = -\\frac{1}{|P|}\\sum_{(i,j) \\in P} \\log\\sigma(s_{ij})
      - \\frac{1}{|Q|}\\sum_{(i,j) \\in Q} \\log(1 - \\sigma(s_{ij})),
    \\qquad s_{ij} = \\langle W_s q_i, W_s q_j \\rangle,

with P the observed edges (all, or ``edges_per_step`` drawn per step) and Q as many
uniformly random node pairs per edge as ``negatives_per_edge`` (random pairs are non-edges
with probability 1 - E/N^2). Memory is O(N + E).

Selection is on the validation accuracy of the class head on :math:`q`, like every stage.
The class head is linear on each node's own code by default, or a graph convolution over
the codes of its neighbourhood (``codebook.classifier=graph``, the released VQGraph
teacher's design); :math:`W_c q_i` above then reads :math:`\\mathrm{GNN}_c(q)_i`.
"""

from __future__ import annotations

import lightning.pytorch as pl
import torch
import torch.nn.functional as F
from torch import Tensor
from torch_geometric.data import Data
from torchmetrics.functional import accuracy

from g2m.data.splits import NodeSplit, observed_subgraph, to_local
from g2m.lit.codebook_stage import LOSS_TERMS
from g2m.lit.loaders import FullGraphStage
from g2m.lit.safety import ResumableRNG
from g2m.lit.teacher import with_adjacency
from g2m.models.codebook import GraphTokenizer


class CodebookSystem(FullGraphStage, ResumableRNG, pl.LightningModule):
    """Full-graph training of a :class:`GraphTokenizer` on the observed graph.

    Args:
        model: the tokenizer. graph: the full graph (global ids). split: the node split.
        lr, weight_decay: Adam settings.
        weights: ``{"ce", "feature", "structure"}`` loss weights (commitment is inside the
            quantiser); checked, like the sampling counts, by
            :class:`~g2m.lit.codebook_stage.CodebookStage`.
        edges_per_step: positive edges sampled per step (None: every observed edge).
        negatives_per_edge: random node pairs per positive edge.
        seed: seed of the edge and negative sampling.
    """

    def __init__(
        self,
        model: GraphTokenizer,
        graph: Data,
        split: NodeSplit,
        lr: float,
        weight_decay: float,
        weights: dict[str, float],
        edges_per_step: int | None = None,
        negatives_per_edge: int = 1,
        seed: int = 0,
    ):
        super().__init__()
        self.model = model
        self.lr, self.weight_decay = lr, weight_decay
        self.weights = {k: float(v) for k, v in weights.items()}
        self.edges_per_step, self.negatives_per_edge, self.seed = (
            edges_per_step,
            negatives_per_edge,
            seed,
        )
        self.num_classes = int(graph.y.max()) + 1
        self.split = split
        observed = observed_subgraph(graph, split)
        self.edge_index = observed.edge_index
        self.observed = with_adjacency(observed, model.encoder)
        self.local = {
            part: to_local(getattr(split, part), split.observed, split.num_nodes)
            for part in ("train", "val", "test")
        }
        self._sampler: torch.Generator | None = None

    def _on_device(self) -> None:
        # features generated on the GPU arrive there while the split's ids are on the CPU
        if any(t.device != self.device for t in (self.observed.x, self.local["train"])):
            self.observed = self.observed.to(self.device)
            self.edge_index = self.edge_index.to(self.device)
            self.local = {k: v.to(self.device) for k, v in self.local.items()}

    def _pairs(self) -> tuple[Tensor, Tensor]:
        """Positive edges (all or a sample) and uniformly random negative pairs."""
        self._sampler = self.stage_generator("negative_edges", self.seed, self.device)
        num_nodes, num_edges = self.observed.num_nodes, self.edge_index.size(1)
        positive = self.edge_index
        if self.edges_per_step is not None and self.edges_per_step < num_edges:
            pick = torch.randint(
                num_edges, (self.edges_per_step,), device=self.device, generator=self._sampler
            )
            positive = positive[:, pick]
        shape = (2, positive.size(1) * self.negatives_per_edge)
        negative = torch.randint(num_nodes, shape, device=self.device, generator=self._sampler)
        return positive, negative

    def loss_terms(self) -> dict[str, Tensor]:
        """Unweighted terms of one full-graph step (plus the quantiser's commitment)."""
        g, train = self.observed, self.local["train"]
        out = self.model(g.x, g.adj_t)
        quantized = out.quantized.float()
        positive, negative = self._pairs()
        pos = self.model.structure_logits(quantized, *positive).float()
        neg = self.model.structure_logits(quantized, *negative).float()
        structure = F.binary_cross_entropy_with_logits(
            pos, torch.ones_like(pos)
        ) + F.binary_cross_entropy_with_logits(neg, torch.zeros_like(neg))
        return {
            "ce": F.cross_entropy(
                self.model.class_logits(quantized, g.adj_t)[train].float(), g.y[train]
            ),
            "feature": F.mse_loss(self.model.feature_decoder(quantized).float(), g.x.float()),
            "structure": structure,
            "commitment": out.commitment,
        }

    def training_step(self, batch: Tensor, batch_idx: int) -> Tensor:
        self._on_device()
        terms = self.loss_terms()
        loss = terms["commitment"] + sum(self.weights[k] * terms[k] for k in LOSS_TERMS)
        for name, value in terms.items():
            self.log(f"codebook/train/loss_{name}", value, batch_size=1)
        self.log("codebook/train/loss", loss, prog_bar=True, batch_size=1)
        return loss

    def _class_accuracy(self, part: str) -> Tensor:
        g, idx = self.observed, self.local[part]
        if not self.training and self.model.selects_rows:  # encode the scored nodes alone
            logits = self.model.class_logits(self.model(g.x, g.adj_t, rows=idx).quantized, None)
        else:
            logits = self.model.class_logits(self.model(g.x, g.adj_t).quantized, g.adj_t)[idx]
        return accuracy(
            logits.argmax(-1), g.y[idx], task="multiclass", num_classes=self.num_classes
        )

    def validation_step(self, batch: Tensor, batch_idx: int) -> None:
        self._on_device()
        self.log("codebook/val/acc", self._class_accuracy("val"), prog_bar=True, batch_size=1)

    def test_step(self, batch: Tensor, batch_idx: int) -> None:
        self._on_device()
        self.log("codebook/test/acc", self._class_accuracy("test"), batch_size=1)


@torch.no_grad()
def encode_observed(
    system: CodebookSystem, class_logits: bool = False
) -> tuple[Tensor, Tensor, Tensor | None]:
    """Eval-mode ``(embedding [N_obs, D], codes [N_obs], class logits [N_obs, C] or None)``
    of the observed graph; the class logits only when ``class_logits`` is set.

    Runs where the graph sits after training (the GPU, for a GPU run: at products scale the
    CPU would take minutes); after fitting Lightning may have moved the model back to the
    CPU, so the model follows the graph. The outputs are returned on that device.
    """
    system.eval()
    g = system.observed
    model = system.model.to(g.x.device)
    out = model(g.x, g.adj_t)
    logits = model.class_logits(out.quantized, g.adj_t).float() if class_logits else None
    return out.embedding.float(), out.codes, logits
