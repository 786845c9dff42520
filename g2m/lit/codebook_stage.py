"""VQGraph's codebook stage (Yang et al., ICLR 2024, Sec. 3.2): what ``loss=vq`` adds
between teacher and student, and the artifact it leaves.

:class:`CodebookStage` is an :class:`~g2m.run.extra.ExtraStage`: built from
``configs/codebook/vqgraph.yaml`` at the top of the run (its tokenizer has the teacher's
architecture with ``dim`` outputs), trained with :class:`~g2m.lit.codebook.CodebookSystem`
after the teacher, stored as ``codebook.pt`` (:class:`CodebookArtifact`) and handed to the
student stage: the objective gets the frozen codes, the student the tokenizer's embeddings
as its representation targets and, with ``soft_labels=tokenizer``, the tokenizer's logits as
its soft labels (the released code's arrangement, where the VQ tokenizer is the teacher).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

import torch
from torch import Tensor, nn

from g2m.data.splits import NodeSplit
from g2m.errors import ConfigError
from g2m.models.similarity import SIMILARITIES
from g2m.run.artifacts import NodeTableArtifact
from g2m.run.extra import DistillationTargets, ExtraStage, StageContext
from g2m.run.settings import StageSchedule

if TYPE_CHECKING:  # Lightning and PyG load when the stage builds or trains
    from g2m.models.codebook import GraphTokenizer

LOSS_TERMS = ("ce", "feature", "structure")  # the tokenizer's weighted terms
CLASSIFIERS = ("linear", "graph")
SOFT_LABELS = ("teacher", "tokenizer")


CODEBOOK_ARTIFACT_VERSION = 1


@dataclass
class CodebookArtifact(NodeTableArtifact):
    """What VQGraph's student stage needs from the codebook stage, reusable across runs.

    Attributes:
        codebook: ``[K, D]`` the frozen codes.
        embedding: ``[N, D]`` tokenizer embeddings :math:`h` (NaN rows for held-out nodes).
        codes: ``[N]`` each node's nearest code (-1 for held-out nodes).
        similarity: the measure the codes were learnt with (``cosine`` or ``l2``).
        split, dataset, num_features: what the artifact was made for (checked on reuse).
        provenance: the graph's digest and the codebook config it was trained with
            (checked on reuse: :func:`g2m.run.artifacts.refuse_other_provenance`).
        logits: ``[N, C]`` the tokenizer's class logits (NaN rows for held-out nodes), the
            soft labels under ``codebook.soft_labels=tokenizer``; stored only for a graph
            class head (``codebook.classifier=graph``), None otherwise.

    The teacher's soft code assignments are :meth:`assignments` (a function of the
    temperature, which belongs to the distillation objective).
    """

    codebook: Tensor
    embedding: Tensor
    codes: Tensor
    similarity: str
    split: NodeSplit
    dataset: str
    num_features: int
    metrics: dict[str, Any] = field(default_factory=dict)
    timings: dict[str, Any] = field(default_factory=dict)
    logits: Tensor | None = None
    provenance: dict[str, Any] = field(default_factory=dict)

    kind: ClassVar[str] = "codebook"
    version: ClassVar[int] = CODEBOOK_ARTIFACT_VERSION
    tensors: ClassVar[tuple[str, ...]] = ("embedding", "codebook", "codes", "logits")

    def assignments(self, temperature: float, nodes: Tensor | None = None) -> Tensor:
        """``[N, K]`` (or ``[len(nodes), K]``) soft assignments; rows sum to 1."""
        from g2m.models.similarity import soft_assignment

        embedding = self.embedding if nodes is None else self.embedding[nodes]
        return soft_assignment(embedding, self.codebook, temperature, self.similarity)


class CodebookStage(ExtraStage):
    """Train VQGraph's graph tokenizer and keep its codes (``configs/codebook/vqgraph.yaml``).

    Args:
        size: K codes. dim: D, the code dimension (the encoder's output width).
        similarity: ``cosine`` or ``l2``. decay: EMA decay of the codebook.
        commitment_weight, kmeans_init, dead_code_threshold: the quantiser's settings
            (:class:`~g2m.models.codebook.GraphTokenizer`).
        classifier: ``linear`` (a class head on each node's code) or ``graph`` (one
            convolution of the teacher's kind over the neighbours' codes).
        soft_labels: ``teacher`` (the student distils the teacher stage's logits) or
            ``tokenizer`` (this stage's; needs ``classifier=graph``).
        weights: ``{ce, feature, structure}`` loss weights (>= 0).
        edges_per_step: positive edges per step (None: all). negatives_per_edge: random
            pairs per positive edge.
        optim: ``{lr, weight_decay}``. max_epochs, patience: the stage's schedule.
        artifact: a stored ``codebook.pt`` to reuse instead of training.
    """

    name = "codebook"

    def __init__(
        self,
        size: int,
        dim: int,
        similarity: str,
        decay: float,
        commitment_weight: float,
        kmeans_init: bool,
        dead_code_threshold: float,
        classifier: str,
        soft_labels: str,
        weights: dict[str, float],
        edges_per_step: int | None,
        negatives_per_edge: int,
        optim: dict[str, float],
        max_epochs: int,
        patience: int,
        artifact: str | None = None,
    ):
        for key, value, allowed in (
            ("similarity", similarity, SIMILARITIES),
            ("classifier", classifier, CLASSIFIERS),
            ("soft_labels", soft_labels, SOFT_LABELS),
        ):
            if value not in allowed:
                raise ConfigError(f"codebook.{key}={value!r}: expected one of {list(allowed)}.")
        if set(weights) != set(LOSS_TERMS) or any(float(w) < 0 for w in weights.values()):
            raise ConfigError(
                f"codebook.weights must give a number >= 0 for each of {list(LOSS_TERMS)}, "
                f"got {dict(weights)}."
            )
        if negatives_per_edge < 1 or (edges_per_step is not None and edges_per_step < 1):
            raise ConfigError("codebook.negatives_per_edge and edges_per_step must be >= 1.")
        if int(dim) < 1:
            raise ConfigError(f"codebook.dim={dim!r}: expected an integer >= 1.")
        if int(size) < 2:
            raise ConfigError(f"codebook.size={size!r}: expected an integer >= 2 (codes).")
        self.quantizer = dict(
            codebook_size=int(size),
            similarity=similarity,
            decay=decay,
            commitment_weight=commitment_weight,
            kmeans_init=kmeans_init,
            dead_code_threshold=dead_code_threshold,
        )
        self.size, self.dim, self.similarity = int(size), int(dim), similarity
        self.classifier, self.soft_labels = classifier, soft_labels
        self.weights = {k: float(v) for k, v in weights.items()}
        self.edges_per_step, self.negatives_per_edge = edges_per_step, negatives_per_edge
        self.schedule = StageSchedule(
            "codebook", optim["lr"], optim["weight_decay"], max_epochs, patience
        )
        self.artifact = artifact
        self.tokenizer: GraphTokenizer | None = None

    def build(
        self,
        num_features: int,
        num_classes: int,
        teacher_model: Callable[..., nn.Module],
        self_loops: bool,
    ) -> None:
        from g2m.models.codebook import GraphTokenizer

        encoder = teacher_model(in_channels=num_features, out_channels=self.dim)
        graph_classifier = None
        if self.classifier == "graph":  # one convolution of the teacher's kind over the codes
            graph_classifier = teacher_model(
                in_channels=self.dim, out_channels=num_classes, num_layers=1
            )
        self.tokenizer = GraphTokenizer(
            encoder,
            num_features,
            num_classes,
            self_loops=self_loops,
            graph_classifier=graph_classifier,
            **self.quantizer,
        )

    def train(self, context: StageContext) -> CodebookArtifact:
        from g2m.lit.codebook import CodebookSystem, encode_observed
        from g2m.lit.fit import fit_and_test

        if self.tokenizer is None:
            raise RuntimeError("CodebookStage.build() must run before train().")
        split, num_classes = context.split, context.teacher.logits.size(1)
        system = CodebookSystem(
            self.tokenizer,
            context.graph,
            split,
            lr=self.schedule.lr,
            weight_decay=self.schedule.weight_decay,
            weights=self.weights,
            edges_per_step=self.edges_per_step,
            negatives_per_edge=self.negatives_per_edge,
            seed=context.seed,
        )
        result = fit_and_test(
            system, self.schedule, context.trainer, context.run_dir, context.logger, True
        )
        # only a graph head's logits can serve as soft labels (a linear head's take one value
        # per code), so only they are computed and stored: N x C floats, 0.5 GB at products scale
        graph_head = self.classifier == "graph"
        embedding, codes, logits = encode_observed(system, class_logits=graph_head)
        observed = split.observed
        full_embedding = torch.full((split.num_nodes, embedding.size(1)), float("nan"))
        full_codes = torch.full((split.num_nodes,), -1, dtype=torch.long)
        full_embedding[observed], full_codes[observed] = embedding.cpu(), codes.cpu()
        full_logits = None
        if graph_head:
            full_logits = torch.full((split.num_nodes, num_classes), float("nan"))
            full_logits[observed] = logits.cpu()
        metrics = {
            "val_acc": result.val_acc,
            "test_acc": result.test["acc"],
            "best_epoch": result.best_epoch,
            "epochs": result.epochs_run,
            "size": self.size,
            "codes_used": int(codes.unique().numel()),
            "classifier": self.classifier,
        }
        return CodebookArtifact(
            self.tokenizer.codebook.cpu(),
            full_embedding,
            full_codes,
            self.similarity,
            split,
            context.dataset,
            context.graph.num_features,
            metrics=metrics,
            timings={"seconds": round(result.seconds, 2), **result.rates()},
            logits=full_logits,
        )

    def load(self, path: Path) -> CodebookArtifact:
        return CodebookArtifact.load(path)

    def hand_over(
        self,
        artifact: CodebookArtifact,
        targets: DistillationTargets,
        objective: nn.Module,
        student: nn.Module,
    ) -> DistillationTargets:
        """Attach the frozen codes to the objective; the student matches the tokenizer's
        embeddings through them and, with ``soft_labels=tokenizer``, distils its logits."""
        objective.attach_codebook(artifact.codebook, student.embedding_channels)
        targets = targets.replace(embedding=artifact.embedding)
        if self.soft_labels == "teacher":
            return targets
        if artifact.logits is None:
            raise ConfigError(
                "codebook.soft_labels=tokenizer needs the tokenizer's class logits, and this "
                "codebook has none: only a tokenizer with codebook.classifier=graph stores them "
                "(a linear head's logits take one value per code). Retrain the codebook with "
                "codebook.classifier=graph (without codebook.artifact), or use "
                "codebook.soft_labels=teacher."
            )
        return targets.replace(logits=artifact.logits, source="tokenizer")

    def describe(self, metrics: dict[str, Any]) -> str:
        return f"K={metrics['size']}, {metrics['codes_used']} used"
