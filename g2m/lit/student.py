"""LightningModule that distils stored teacher targets into an MLP student.

Training iterates over mini-batches of *observed* node ids (all observed nodes when the
batch is large enough); the objective sees the student's outputs, the teacher's stored
logits/embeddings for the same nodes and which of them are labelled training nodes.

Objectives that declare ``needs_edges`` also get every observed edge ``(i, j)`` leaving a
batch node ``i``, with the student's and the teacher's logits at the neighbour ``j``: the
student runs once over the batch and its neighbours (each node once, so both ends of an
edge see the same dropout mask), and the teacher's side is read from its stored outputs.
A step therefore costs O(B + E_b) for B batch nodes with E_b incident edges; with
``batch_size=null`` the batch is every observed node and the objective is full-batch.
Under DDP (``trainer.devices=N``) each rank takes every N-th batch of one shared
permutation (``batch_size`` is per device) and evaluates every node.
The deployed student still never sees an edge. Selection is on validation accuracy;
``test`` runs once on the best checkpoint.

Objectives that declare ``needs_mixed_inputs`` (mixup) also get the student's outputs on
mixed features of the batch, from a second forward pass; the objective draws the mixing
(:meth:`~g2m.losses.base.DistillationObjective.draw_mixing`) from the system's own CPU
generator ``mixup``, seeded from ``seed`` and kept in every checkpoint, so a run is seeded
and resumes with the same draws. Objectives that declare ``perturbs_inputs`` (NOSMOG) also
get the student's outputs at the inputs their
:meth:`~g2m.losses.base.DistillationObjective.perturb` returns, and those that declare
``needs_generator`` (KRD) a generator on the batch's device (``objective``, seeded from
``seed`` and kept in checkpoints). Other objectives take none of these steps. After every
training epoch the objective's ``end_epoch`` runs (state it keeps across steps lives in its
buffers, so checkpoints carry it).
"""

from __future__ import annotations

import lightning.pytorch as pl
import torch
from torch import Tensor
from torchmetrics.classification import MulticlassAccuracy

from g2m.data.incidence import IncidentEdges
from g2m.data.splits import NodeSplit
from g2m.errors import ConfigError
from g2m.lit.loaders import NodeBatches, labelled_chunks
from g2m.lit.safety import ResumableRNG
from g2m.losses.base import DistillationBatch, DistillationObjective
from g2m.models.student import MLPStudent

CPU = torch.device("cpu")
# the mixing generator's seed is the run's plus this, so that its stream is not the
# shuffling generator's (seeded with the run's seed itself)
MIXUP_SEED_OFFSET = 7919
# and the objective's own generator (needs_generator, perturbs_inputs) is seeded with this
OBJECTIVE_SEED_OFFSET = 104729


class StudentSystem(ResumableRNG, pl.LightningModule):
    """Distillation of teacher targets into a :class:`MLPStudent`.

    Args:
        model: the student MLP.
        objective: the distillation objective (its ``combine`` gives the loss).
        x: ``[N, F]`` features. y: ``[N]`` labels (only training labels enter the loss).
        teacher_logits: ``[N, C]`` stored teacher logits (NaN rows for held-out nodes), or
            None when the objective needs no teacher (then ``num_classes`` gives C).
        teacher_embedding: ``[N, D]`` stored teacher embeddings, or None.
        split: node split; the training pool is ``split.observed``.
        distill_val: keep the validation nodes in the training pool (GLNN's CPF protocol:
            the student fits the teacher's targets on every observed node, so validation
            accuracy is measured on nodes whose targets it was trained on). False leaves
            them out, so that validation measures accuracy on nodes the student never saw.
        lr, weight_decay: Adam settings (over the student and any trainable part of the
            objective, such as a projection head).
        batch_size: training nodes per step; None for one full batch per epoch.
        edge_index: ``[2, E]`` observed edges in global ids (both directions), required
            when the objective ``needs_edges``; never an edge with a held-out end.
        eval_batch_size: nodes per evaluation chunk. seed: shuffling seed.
        steps_per_call: training batches per Lightning step (> 1: the system steps the
            optimiser itself, :mod:`g2m.lit.student_steps`; the same steps in the same order).
        cuda_graph: replay each full-size training step from a CUDA graph where the run
            allows it (a GPU, one device, an objective without ``needs_edges`` or
            ``needs_mixed_inputs``); elsewhere the steps run eagerly, as if it were off.
    """

    def __init__(
        self,
        model: MLPStudent,
        objective: DistillationObjective,
        x: Tensor,
        y: Tensor,
        teacher_logits: Tensor | None,
        teacher_embedding: Tensor | None,
        split: NodeSplit,
        lr: float,
        weight_decay: float,
        batch_size: int | None,
        eval_batch_size: int = 65536,
        seed: int = 0,
        edge_index: Tensor | None = None,
        distill_val: bool = True,
        num_classes: int | None = None,
        steps_per_call: int = 1,
        cuda_graph: bool = False,
    ):
        super().__init__()
        if steps_per_call < 1:
            raise ConfigError(f"student.steps_per_call must be >= 1, got {steps_per_call}.")
        self.steps_per_call, self.cuda_graph = int(steps_per_call), bool(cuda_graph)
        # several batches per Lightning step, or graphs: the system steps the optimiser
        self.automatic_optimization = self.steps_per_call == 1 and not self.cuda_graph
        self._graphed = None
        self._graph_checked = False
        if objective.needs_edges and edge_index is None:
            raise ConfigError(f"objective '{objective.name}' needs the graph's edges; none given.")
        if objective.needs_embeddings and teacher_embedding is None:
            raise ConfigError(f"objective '{objective.name}' needs teacher embeddings; none given.")
        self.model, self.objective = model, objective
        self.lr, self.weight_decay = lr, weight_decay
        self.batch_size, self.eval_batch_size, self.seed = batch_size, eval_batch_size, seed
        self.split = split
        self.pool = split.observed
        if not distill_val:
            self.pool = split.observed[~torch.isin(split.observed, split.val)]
        labelled = torch.zeros(split.num_nodes, dtype=torch.bool)
        labelled[split.train] = True
        self.nodes = {"x": x, "y": y, "labelled": labelled}
        if teacher_logits is not None:
            self.nodes["teacher_logits"] = teacher_logits
        if objective.needs_embeddings:
            self.nodes["teacher_embedding"] = teacher_embedding
        self.edges = IncidentEdges(edge_index, split.num_nodes) if objective.needs_edges else None
        self._loss_sums: dict[str, Tensor] = {}
        self._loss_nodes = 0
        if num_classes is None:
            num_classes = teacher_logits.size(1)
        self.metrics = torch.nn.ModuleDict(
            {
                # every rank evaluates every node (see val_dataloader): no cross-rank sum
                part: MulticlassAccuracy(
                    num_classes=num_classes, average="micro", sync_on_compute=False
                )
                for part in ("val", "test", "test_ind")
            }
        )

    def _on_device(self) -> None:
        # each tensor on its own: features generated on the GPU arrive there already while
        # the teacher's stored targets come from the CPU
        if any(v.device != self.device for v in self.nodes.values()):
            self.nodes = {k: v.to(self.device) for k, v in self.nodes.items()}
            if self.edges is not None:
                self.edges.to(self.device)

    def _student_outputs(
        self, nodes: Tensor, deduplicate: bool = False
    ) -> tuple[Tensor, Tensor | None]:
        """Student logits (and embedding) at ``nodes``.

        With ``deduplicate`` (batch + neighbours, where ids repeat) each distinct node is
        computed once; a batch of distinct ids is passed through as is.
        """
        wants_embedding = self.objective.needs_embeddings
        inverse = None
        if deduplicate:
            nodes, inverse = torch.unique(nodes, return_inverse=True)
        out = self.model(self.nodes["x"][nodes], return_embedding=wants_embedding)
        logits, embedding = out if wants_embedding else (out, None)
        if inverse is None:
            return logits, embedding
        return logits[inverse], embedding[inverse] if embedding is not None else None

    def training_step(self, batch: Tensor | list[Tensor], batch_idx: int) -> Tensor:
        self._on_device()
        if self.automatic_optimization:
            loss, terms = self.batch_loss(batch)
            self._accumulate({**{f"loss_{k}": v for k, v in terms.items()}, "loss": loss}, batch)
            self._log_epoch_means()
            return loss
        for idx in batch:  # several optimiser steps in one Lightning step
            loss = self._manual_step(idx)
        self._log_epoch_means()
        return loss

    def _manual_step(self, idx: Tensor) -> Tensor:
        """One optimiser step on ``idx``: from a CUDA graph where it applies, else eagerly."""
        graphed = self._graphed_step()
        if graphed is not None:
            self._loss_nodes += idx.numel()
            full = idx.numel() == self.batch_size
            loss = graphed.step(idx) if full else graphed.eager(idx)
            self._count_optimizer_step()
            return loss
        optimizer = self.optimizers()
        optimizer.zero_grad()
        loss, terms = self.batch_loss(idx)
        self.manual_backward(loss)
        optimizer.step()
        self._accumulate({**{f"loss_{k}": v for k, v in terms.items()}, "loss": loss}, idx)
        return loss

    def _count_optimizer_step(self) -> None:
        """Advance Lightning's step count by one optimiser step that it did not see.

        The graphed step drives the raw ``torch.optim`` optimiser (its update is replayed
        from the graph), and Lightning counts only the steps taken through its own
        optimiser wrapper; without this ``trainer.global_step`` stays at 0, and the
        checkpoint callback, which saves only when the step count has moved, saves nothing.
        """
        progress = self.trainer.fit_loop.epoch_loop.manual_optimization.optim_step_progress
        progress.increment_ready()
        progress.increment_completed()

    def _graphed_step(self):
        """The :class:`~g2m.lit.student_steps.GraphedStep`, if this run can use one."""
        if self._graph_checked:
            return self._graphed
        self._graph_checked = True
        usable = (
            self.cuda_graph
            and self.device.type == "cuda"
            and self.trainer.world_size == 1
            and not self.objective.needs_edges
            and not self.objective.needs_mixed_inputs  # its draws are made on the host
            and not self.objective.perturbs_inputs  # gradients w.r.t. inputs in the step
            and not self.objective.needs_generator
            and self.batch_size is not None
        )
        if usable:
            from g2m.lit.student_steps import GraphedStep

            dtype = {"bf16-mixed": torch.bfloat16, "16-mixed": torch.float16}.get(
                str(self.trainer.precision)
            )

            def loss_of(idx: Tensor):
                loss, terms = self.batch_loss(idx)
                named = {**{f"loss_{k}": v for k, v in terms.items()}, "loss": loss}
                self._accumulate(named, idx, count=False)
                return loss, terms

            optimizer = self.optimizers().optimizer
            self._graphed = GraphedStep(loss_of, list(self.parameters()), optimizer, dtype)
        return self._graphed

    def batch_loss(self, idx: Tensor) -> tuple[Tensor, dict[str, Tensor]]:
        """The objective's total loss and its terms for the batch of node ids ``idx``."""
        n = self.nodes
        size = idx.numel()
        edge_fields: dict[str, Tensor] = {}
        if self.edges is not None:
            position, neighbour = self.edges.gather(idx)
            nodes = torch.cat([idx, neighbour])
            logits, embedding = self._student_outputs(nodes, deduplicate=True)
            logits, neighbour_logits = logits[:size], logits[size:]
            embedding = embedding[:size] if embedding is not None else None
            edge_fields = {
                "edge_position": position,
                "neighbour_student_logits": neighbour_logits,
                "neighbour_teacher_logits": n["teacher_logits"][neighbour],
                "neighbour_nodes": neighbour,
            }
        else:
            logits, embedding = self._student_outputs(idx)
        mixed_fields = self._mixed_outputs(idx) if self.objective.needs_mixed_inputs else {}
        extra = self._objective_fields(idx)
        batch = DistillationBatch(
            student_logits=logits,
            teacher_logits=n["teacher_logits"][idx] if "teacher_logits" in n else None,
            labels=n["y"][idx],
            labelled=n["labelled"][idx],
            student_embedding=embedding,
            teacher_embedding=n["teacher_embedding"][idx] if embedding is not None else None,
            **edge_fields,
            **mixed_fields,
            **extra,
        )
        if self.objective.perturbs_inputs:
            perturbed = self.objective.perturb(n["x"][idx], self.model, batch)
            batch.perturbed_student_logits = self.model(perturbed)
        terms = self.objective(batch)
        return self.objective.combine(terms), terms

    def _objective_fields(self, idx: Tensor) -> dict:
        """The batch's node ids, and the objective's generator where it needs one."""
        fields: dict = {"nodes": idx}
        objective = self.objective
        if not (objective.needs_generator or objective.perturbs_inputs):
            return fields
        device = self.nodes["x"].device
        generator = self.stage_generator("objective", self.seed + OBJECTIVE_SEED_OFFSET, device)
        fields["generator"] = generator
        return fields

    def _mixed_outputs(self, idx: Tensor) -> dict[str, Tensor]:
        """The student at :math:`\\lambda x_b + (1-\\lambda) x_{\\pi(b)}` for the batch ``idx``,
        with the objective's draw of :math:`(\\pi, \\lambda)` from the ``mixup`` generator."""
        generator = self.stage_generator("mixup", self.seed + MIXUP_SEED_OFFSET, CPU)
        index, weight = self.objective.draw_mixing(idx.numel(), generator)
        x = self.nodes["x"][idx]
        index, weight = index.to(x.device), weight.to(x.device)
        w = weight.to(x.dtype)
        mixed = w * x + (1 - w) * x[index]
        return {
            "mixed_student_logits": self.model(mixed),
            "mix_index": index,
            "mix_weight": weight,
        }

    def on_train_epoch_end(self) -> None:
        self.objective.end_epoch()

    def _accumulate(self, values: dict[str, Tensor], idx: Tensor, count: bool = True) -> None:
        """Add the batch's terms, weighted by its size, to the epoch's sums on the device (in
        place: a CUDA graph replays the same additions into the same tensors)."""
        size = idx.numel()
        for name, value in values.items():
            if name not in self._loss_sums:
                self._loss_sums[name] = torch.zeros((), device=value.device)
            self._loss_sums[name].add_(value.detach().float() * size)
        if count:
            self._loss_nodes += size

    def _log_epoch_means(self) -> None:
        """Node-weighted epoch means of the training terms, logged once per epoch.

        Sums accumulate on the device; ``self.log`` (about 1 ms of host time per call) runs
        only at the epoch's last step, so a step costs no logging and no synchronisation.
        """
        if self._trainer is None or not self._trainer.is_last_batch:
            return
        for name, total in self._loss_sums.items():
            mean = total / max(self._loss_nodes, 1)
            # logged once an epoch, so the weight Lightning gives it is moot; naming it keeps
            # Lightning from guessing a batch size from a list of batches (and warning)
            self.log(
                f"student/train/{name}",
                mean,
                on_step=False,
                on_epoch=True,
                sync_dist=True,
                batch_size=1,
            )
            total.zero_()  # after self.log has read it: the logged value is a copy
        self._loss_nodes = 0

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
        # a step replayed from a CUDA graph needs Adam's state on the device
        capturable = self.cuda_graph and self.device.type == "cuda"
        return torch.optim.Adam(
            self.parameters(), lr=self.lr, weight_decay=self.weight_decay, capturable=capturable
        )

    @property
    def nodes_per_epoch(self) -> int:
        """Training nodes per epoch over all ranks: every node of the pool once."""
        return self.pool.numel()

    def train_dataloader(self) -> NodeBatches:
        generator = self.seeded_generator(self.seed)
        observed = self.pool.to(self.device)
        batch_size = self.batch_size if self.batch_size is not None else observed.numel()
        trainer = self.trainer
        batches = NodeBatches(
            observed, batch_size, generator, trainer.global_rank, trainer.world_size
        )
        if self.automatic_optimization:
            return batches
        from g2m.lit.student_steps import StepGroups

        return StepGroups(batches, self.steps_per_call)

    def val_dataloader(self):
        # replicated on every rank: evaluation is cheap next to training, and every rank then
        # holds the same accuracy for checkpointing and early stopping
        return labelled_chunks({"val": self.split.val}, self.eval_batch_size)

    def test_dataloader(self):
        parts = {"test": self.split.test, "test_ind": self.split.test_ind}
        return labelled_chunks(parts, self.eval_batch_size)
