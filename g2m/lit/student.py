"""LightningModule that distils stored teacher targets into an MLP student.

Training iterates over mini-batches of *observed* node ids (all observed nodes when the
batch is large enough); the objective sees the student's outputs, the teacher's stored
logits/embeddings for the same nodes and which of them are labelled training nodes. The
student never sees an edge (objectives that declare ``needs_edges`` get them in a later
release). Selection is on validation accuracy; ``test`` runs once on the best checkpoint.
"""

from __future__ import annotations

import lightning.pytorch as pl
import torch
from torch import Tensor
from torchmetrics.classification import MulticlassAccuracy

from g2m.data.splits import NodeSplit
from g2m.errors import ConfigError
from g2m.lit.loaders import labelled_chunks, node_loader
from g2m.lit.safety import ResumableRNG
from g2m.losses.base import DistillationBatch, DistillationObjective
from g2m.models.student import MLPStudent


class StudentSystem(ResumableRNG, pl.LightningModule):
    """Distillation of teacher targets into a :class:`MLPStudent`.

    Args:
        model: the student MLP.
        objective: the distillation objective (its ``combine`` gives the loss).
        x: ``[N, F]`` features. y: ``[N]`` labels (only training labels enter the loss).
        teacher_logits: ``[N, C]`` stored teacher logits (NaN rows for held-out nodes).
        teacher_embedding: ``[N, D]`` stored teacher embeddings, or None.
        split: node split; the training pool is ``split.observed``.
        lr, weight_decay: Adam settings. batch_size: training nodes per step.
        eval_batch_size: nodes per evaluation chunk. seed: shuffling seed.
    """

    def __init__(
        self,
        model: MLPStudent,
        objective: DistillationObjective,
        x: Tensor,
        y: Tensor,
        teacher_logits: Tensor,
        teacher_embedding: Tensor | None,
        split: NodeSplit,
        lr: float,
        weight_decay: float,
        batch_size: int,
        eval_batch_size: int = 65536,
        seed: int = 0,
    ):
        super().__init__()
        if objective.needs_edges or objective.needs_codebook:
            raise ConfigError(
                f"objective '{objective.name}' needs edges or a codebook, which this student "
                "stage does not provide yet."
            )
        self.model, self.objective = model, objective
        self.lr, self.weight_decay = lr, weight_decay
        self.batch_size, self.eval_batch_size, self.seed = batch_size, eval_batch_size, seed
        self.split = split
        labelled = torch.zeros(split.num_nodes, dtype=torch.bool)
        labelled[split.train] = True
        self.nodes = {"x": x, "y": y, "labelled": labelled, "teacher_logits": teacher_logits}
        if objective.needs_embeddings:
            self.nodes["teacher_embedding"] = teacher_embedding
        num_classes = teacher_logits.size(1)
        self.metrics = torch.nn.ModuleDict(
            {
                part: MulticlassAccuracy(num_classes=num_classes, average="micro")
                for part in ("val", "test", "test_ind")
            }
        )

    def _on_device(self) -> None:
        if self.nodes["x"].device != self.device:
            self.nodes = {k: v.to(self.device) for k, v in self.nodes.items()}

    def training_step(self, idx: Tensor, batch_idx: int) -> Tensor:
        self._on_device()
        n = self.nodes
        wants_embedding = self.objective.needs_embeddings
        out = self.model(n["x"][idx], return_embedding=wants_embedding)
        logits, embedding = out if wants_embedding else (out, None)
        batch = DistillationBatch(
            student_logits=logits,
            teacher_logits=n["teacher_logits"][idx],
            labels=n["y"][idx],
            labelled=n["labelled"][idx],
            student_embedding=embedding,
            teacher_embedding=n["teacher_embedding"][idx] if wants_embedding else None,
        )
        terms = self.objective(batch)
        loss = self.objective.combine(terms)
        size = idx.numel()
        for name, value in terms.items():
            self.log(f"student/train/loss_{name}", value, batch_size=size)
        self.log("student/train/loss", loss, prog_bar=True, batch_size=size)
        return loss

    def _evaluate(self, batch: tuple[str, Tensor], stage: str) -> None:
        self._on_device()
        part, idx = batch
        logits = self.model(self.nodes["x"][idx])
        metric = self.metrics[part]
        metric.update(logits.argmax(-1), self.nodes["y"][idx])
        key = "acc_ind" if part == "test_ind" else "acc"
        split_name = "val" if part == "val" else "test"
        self.log(
            f"student/{split_name}/{key}",
            metric,
            prog_bar=stage == "val",
            on_epoch=True,
            on_step=False,
            batch_size=idx.numel(),
        )

    def validation_step(self, batch: tuple[str, Tensor], batch_idx: int) -> None:
        self._evaluate(batch, "val")

    def test_step(self, batch: tuple[str, Tensor], batch_idx: int) -> None:
        self._evaluate(batch, "test")

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return torch.optim.Adam(self.model.parameters(), lr=self.lr, weight_decay=self.weight_decay)

    def train_dataloader(self):
        generator = self.seeded_generator(self.seed)
        return node_loader(self.split.observed, self.batch_size, generator=generator)

    def val_dataloader(self):
        return labelled_chunks({"val": self.split.val}, self.eval_batch_size)

    def test_dataloader(self):
        parts = {"test": self.split.test, "test_ind": self.split.test_ind}
        return labelled_chunks(parts, self.eval_batch_size)
