"""LightningModule that trains a GNN teacher full-graph on the observed graph.

Model selection is on validation accuracy (the stage's checkpoint callback); ``test``
runs once, on the best checkpoint, and reports the transductive test accuracy on the
observed graph and, in the inductive setting, the held-out accuracy with the full graph
(GLNN's protocol: at test time the teacher may use every edge).
"""

from __future__ import annotations

import lightning.pytorch as pl
import torch
import torch.nn.functional as F
from torch import Tensor
from torch_geometric.data import Data
from torchmetrics.functional import accuracy

from g2m.data.splits import NodeSplit, observed_subgraph, to_local
from g2m.lit.loaders import FullGraphStage
from g2m.lit.safety import ResumableRNG
from g2m.models.teacher import GNNTeacher


def attach_training_labels(model: GNNTeacher, graph: Data, split: NodeSplit) -> None:
    """Hand a teacher that reads the training labels (``uses_training_labels``: Correct and
    Smooth, :mod:`g2m.models.decoupled`) those of the observed graph and, in the inductive
    setting, of the full graph; other teachers need nothing."""
    gnn = model.gnn
    if not getattr(gnn, "uses_training_labels", False):
        return
    observed = split.observed
    local = torch.zeros(observed.numel(), dtype=torch.bool)
    local[to_local(split.train, observed, split.num_nodes)] = True
    gnn.attach_labels(graph.y[observed], local)
    if split.inductive:
        full = torch.zeros(split.num_nodes, dtype=torch.bool)
        full[split.train] = True
        gnn.attach_labels(graph.y, full)


def with_adjacency(graph: Data, model: GNNTeacher) -> Data:
    """Features, labels and the model's CSR adjacency ``adj_t`` of ``graph`` (no edge list)."""
    adj_t = model.adjacency(graph.edge_index, graph.num_nodes)
    return Data(x=graph.x, y=graph.y, adj_t=adj_t, num_nodes=graph.num_nodes)


class TeacherSystem(FullGraphStage, ResumableRNG, pl.LightningModule):
    """Full-batch supervised training of a :class:`GNNTeacher`.

    Args:
        model: the teacher GNN.
        graph: the full graph (``x``, ``edge_index``, ``y``), global node ids.
        split: the node split; training uses only its observed part.
        lr, weight_decay: Adam settings.
    """

    def __init__(
        self, model: GNNTeacher, graph: Data, split: NodeSplit, lr: float, weight_decay: float
    ):
        super().__init__()
        self.model = model
        self.lr, self.weight_decay = lr, weight_decay
        self.num_classes = int(graph.y.max()) + 1
        self.split = split
        # aggregation runs on sparse CSR adjacencies (see models.teacher.sparse_adjacency)
        self.observed = with_adjacency(observed_subgraph(graph, split), model)
        # transductive: the observed graph is the full graph; build its adjacency once
        self.full = with_adjacency(graph, model) if split.inductive else self.observed
        attach_training_labels(model, graph, split)
        observed_ids = split.observed
        self.local = {
            part: to_local(getattr(split, part), observed_ids, split.num_nodes)
            for part in ("train", "val", "test")
        }

    def _on_device(self) -> None:
        # features generated on the GPU arrive there while the split's ids are on the CPU
        if any(t.device != self.device for t in (self.observed.x, self.local["train"])):
            full_is_observed = self.full is self.observed
            self.observed = self.observed.to(self.device)
            self.full = self.observed if full_is_observed else self.full.to(self.device)
            self.local = {k: v.to(self.device) for k, v in self.local.items()}

    def _logits_at(self, rows: Tensor) -> Tensor:
        """The observed graph's logits at ``rows`` (computed for those rows alone where the
        model can: :attr:`GNNTeacher.selects_rows`)."""
        g = self.observed
        if self.model.selects_rows:
            return self.model(g.x, g.adj_t, rows=rows)
        return self.model(g.x, g.adj_t)[rows]

    def _acc(self, logits: Tensor, y: Tensor) -> Tensor:
        return accuracy(logits.argmax(-1), y, task="multiclass", num_classes=self.num_classes)

    def training_step(self, batch: Tensor, batch_idx: int) -> Tensor:
        self._on_device()
        g, train = self.observed, self.local["train"]
        loss = F.cross_entropy(self._logits_at(train).float(), g.y[train])
        self.log("teacher/train/loss", loss, prog_bar=True, batch_size=train.numel())
        return loss

    def validation_step(self, batch: Tensor, batch_idx: int) -> None:
        self._on_device()
        g, val = self.observed, self.local["val"]
        logits = self._logits_at(val).float()
        self.log("teacher/val/loss", F.cross_entropy(logits, g.y[val]), batch_size=val.numel())
        self.log(
            "teacher/val/acc", self._acc(logits, g.y[val]), prog_bar=True, batch_size=val.numel()
        )

    def test_step(self, batch: Tensor, batch_idx: int) -> None:
        self._on_device()
        g, test = self.observed, self.local["test"]
        logits = self.model(g.x, g.adj_t)
        self.log("teacher/test/acc", self._acc(logits[test], g.y[test]), batch_size=test.numel())
        if self.split.inductive:
            ind = self.split.test_ind.to(self.device)
            full_logits = self.model(self.full.x, self.full.adj_t)
            self.log(
                "teacher/test/acc_ind",
                self._acc(full_logits[ind], self.full.y[ind]),
                batch_size=ind.numel(),
            )
