"""How each stage trains and what it hands on: teacher, codebook (VQGraph) and student.

Each function takes the composed config (the pipeline passes it through; nothing below this
module reads it), trains one Lightning system with :func:`g2m.lit.fit.fit_and_test` and
returns the stage's artifact: a :class:`TeacherArtifact` (logits and embeddings of every
observed node), a :class:`CodebookArtifact` (codes and tokenizer embeddings) or the trained
student. The full-graph stages run on one device; the student stage runs on
``trainer.devices`` (:mod:`g2m.lit.distributed`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from hydra.utils import get_class, instantiate
from omegaconf import DictConfig, OmegaConf
from torch_geometric.data import Data

from g2m.bench.timing import median_ms
from g2m.data.splits import NodeSplit, observed_subgraph
from g2m.errors import ConfigError
from g2m.lit import StudentSystem, TeacherSystem
from g2m.lit.codebook import CodebookSystem, encode_observed
from g2m.lit.distributed import single_device, student_trainer_kwargs
from g2m.lit.fit import StageResult, fit_and_test
from g2m.models import GNNTeacher, MLPStudent, predict_full_graph
from g2m.run.artifacts import CodebookArtifact, TeacherArtifact


def build(node: DictConfig, **kwargs: Any) -> Any:
    """``hydra.utils.instantiate`` with plain Python containers as arguments."""
    return instantiate(node, **kwargs, _convert_="all")


def build_objective(node: DictConfig) -> Any:
    """Instantiate ``loss``; its ``name`` key describes the group and is not an argument."""
    return build(OmegaConf.create({k: v for k, v in node.items() if k != "name"}))


def fit_stage(
    system: Any,
    stage: str,
    cfg: DictConfig,
    run_dir: Path,
    logger: Any,
    full_graph: bool,
    callbacks: tuple[Any, ...] = (),
) -> StageResult:
    """:func:`fit_and_test` with ``<stage>.max_epochs``/``patience`` and the tie rule; a
    full-graph stage runs on one device (:mod:`g2m.lit.distributed`)."""
    node, trainer = cfg[stage], dict(cfg.trainer)
    return fit_and_test(
        system,
        stage,
        run_dir,
        node.max_epochs,
        node.patience,
        logger,
        single_device(trainer) if full_graph else student_trainer_kwargs(trainer),
        on_tie=cfg.selection.on_tie,
        extra_callbacks=callbacks,
    )


def train_teacher(
    cfg: DictConfig, graph: Data, split: NodeSplit, run_dir: Path, logger: Any
) -> TeacherArtifact:
    t = cfg.teacher
    num_classes = int(graph.y.max()) + 1
    gnn = build(t.model, in_channels=graph.num_features, out_channels=num_classes)
    model = GNNTeacher(gnn, self_loops=t.self_loops)
    system = TeacherSystem(model, graph, split, lr=t.optim.lr, weight_decay=t.optim.weight_decay)
    result = fit_stage(system, "teacher", cfg, run_dir, logger, full_graph=True)
    # the teacher's targets: one eval-mode full-graph pass where the graph already sits
    observed = system.observed
    model.to(observed.x.device).eval()
    logits, embedding = predict_full_graph(model, observed.x, observed.adj_t)
    # predict_full_graph just ran the same forward pass: it is the warm-up
    inference_ms = median_ms(lambda: model(observed.x, observed.adj_t), observed.x.device, warmup=0)
    full_logits = torch.full((split.num_nodes, num_classes), float("nan"))
    full_embedding = torch.full((split.num_nodes, embedding.size(1)), float("nan"))
    full_logits[split.observed], full_embedding[split.observed] = logits.cpu(), embedding.cpu()
    model.cpu()
    return TeacherArtifact(
        full_logits,
        full_embedding,
        split,
        cfg.dataset.name,
        t.name,
        graph.num_features,
        metrics=stage_metrics(result, split),
        timings={
            "seconds": round(result.seconds, 2),
            "inference_ms": round(inference_ms, 3),
            "inference_device": observed.x.device.type,
            **stage_rates(result),
        },
    )


def stage_rates(result: StageResult) -> dict[str, float]:
    """A stage's median seconds per training epoch (and nodes/s where defined), rounded."""
    return {k: round(v, 4) if isinstance(v, float) else v for k, v in result.throughput.items()}


def needs_codebook(cfg: DictConfig) -> bool:
    """Whether the configured objective declares that it needs the codebook stage."""
    return bool(getattr(get_class(cfg.loss._target_), "needs_codebook", False))


def train_codebook(
    cfg: DictConfig, graph: Data, split: NodeSplit, run_dir: Path, logger: Any
) -> CodebookArtifact:
    """VQGraph's codebook stage: train the tokenizer, keep its codes and embeddings."""
    from g2m.models.codebook import GraphTokenizer

    c = cfg.codebook
    num_classes = int(graph.y.max()) + 1
    encoder = build(cfg.teacher.model, in_channels=graph.num_features, out_channels=c.dim)
    graph_classifier = None
    if c.classifier == "graph":  # one convolution of the teacher's kind over the codes
        graph_classifier = build(
            cfg.teacher.model, in_channels=c.dim, out_channels=num_classes, num_layers=1
        )
    model = GraphTokenizer(
        encoder,
        graph.num_features,
        num_classes,
        codebook_size=c.size,
        similarity=c.similarity,
        decay=c.decay,
        commitment_weight=c.commitment_weight,
        kmeans_init=c.kmeans_init,
        dead_code_threshold=c.dead_code_threshold,
        self_loops=cfg.teacher.self_loops,
        graph_classifier=graph_classifier,
    )
    system = CodebookSystem(
        model,
        graph,
        split,
        lr=c.optim.lr,
        weight_decay=c.optim.weight_decay,
        weights=dict(c.weights),
        edges_per_step=c.edges_per_step,
        negatives_per_edge=c.negatives_per_edge,
        seed=cfg.seed,
    )
    result = fit_stage(system, "codebook", cfg, run_dir, logger, full_graph=True)
    # only a graph head's logits can serve as soft labels (a linear head's take one value
    # per code), so only they are computed and stored: N x C floats, 0.5 GB at products scale
    graph_head = graph_classifier is not None
    embedding, codes, logits = encode_observed(system, class_logits=graph_head)
    full_embedding = torch.full((split.num_nodes, embedding.size(1)), float("nan"))
    full_codes = torch.full((split.num_nodes,), -1, dtype=torch.long)
    observed = split.observed
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
        "size": int(c.size),
        "codes_used": int(codes.unique().numel()),
        "classifier": str(c.classifier),
    }
    return CodebookArtifact(
        model.codebook.cpu(),
        full_embedding,
        full_codes,
        c.similarity,
        split,
        cfg.dataset.name,
        graph.num_features,
        metrics=metrics,
        timings={"seconds": round(result.seconds, 2), **stage_rates(result)},
        logits=full_logits,
    )


def soft_label_source(cfg: DictConfig) -> str:
    """Whose logits the student distils: ``teacher`` (the SAGE/GCN/GAT teacher) or
    ``tokenizer`` (the codebook stage's class head, VQGraph's released design)."""
    # configs saved before the key existed distilled the teacher's logits
    return str(cfg.codebook.get("soft_labels", "teacher")) if "codebook" in cfg else "teacher"


def distilled_logits(
    cfg: DictConfig, teacher: TeacherArtifact, codebook: CodebookArtifact | None
) -> torch.Tensor:
    """The ``[N, C]`` soft-label logits of the student stage (see :func:`soft_label_source`)."""
    if soft_label_source(cfg) != "tokenizer":
        return teacher.logits
    if codebook is None or codebook.logits is None:
        raise ConfigError(
            "codebook.soft_labels=tokenizer needs the tokenizer's class logits, and this "
            "codebook has none: only a tokenizer with codebook.classifier=graph stores them "
            "(a linear head's logits take one value per code). Retrain the codebook with "
            "codebook.classifier=graph (without codebook.artifact), or use "
            "codebook.soft_labels=teacher."
        )
    return codebook.logits


def train_student(
    cfg: DictConfig,
    graph: Data,
    split: NodeSplit,
    teacher: TeacherArtifact,
    run_dir: Path,
    logger: Any,
    codebook: CodebookArtifact | None = None,
    callbacks: tuple[Any, ...] = (),
) -> tuple[MLPStudent, StageResult]:
    """Distil the student from the stored artifacts; ``callbacks`` watch its Trainer."""
    s = cfg.student
    model = build(s.model, in_channels=graph.num_features, out_channels=teacher.logits.size(1))
    objective = build_objective(cfg.loss)
    teacher_embedding = teacher.embedding
    if objective.needs_codebook:
        if codebook is None:
            raise ConfigError(f"objective '{objective.name}' needs a codebook; none was made.")
        objective.attach_codebook(codebook.codebook, model.embedding_channels)
        teacher_embedding = codebook.embedding  # the tokenizer's, matched through the codes
    system = StudentSystem(
        model,
        objective,
        graph.x,
        graph.y,
        distilled_logits(cfg, teacher, codebook),
        teacher_embedding,
        split,
        lr=s.optim.lr,
        weight_decay=s.optim.weight_decay,
        batch_size=s.batch_size,
        seed=cfg.seed,
        edge_index=observed_edges(graph, split) if objective.needs_edges else None,
        distill_val=bool(s.get("distill_val", True)),
    )
    result = fit_stage(system, "student", cfg, run_dir, logger, False, callbacks)
    return model.cpu().eval(), result


def observed_edges(graph: Data, split: NodeSplit) -> torch.Tensor:
    """``[2, E]`` edges of the observed graph in global ids: none touches a held-out node."""
    if not split.inductive:
        return graph.edge_index
    return split.observed[observed_subgraph(graph, split).edge_index]


def stage_metrics(result: StageResult, split: NodeSplit) -> dict[str, Any]:
    """The metrics.json block of a stage (accuracies as fractions)."""
    block = {
        "val_acc": result.val_acc,
        "test_acc": result.test["acc"],
        "best_epoch": result.best_epoch,
        "epochs": result.epochs_run,
    }
    if split.inductive:
        tran, ind = result.test["acc"], result.test["acc_ind"]
        block |= {"test_acc_ind": ind, "test_acc_prod": 0.8 * tran + 0.2 * ind}
    return block
