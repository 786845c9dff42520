"""Stage order of a g2m run: data -> teacher (or its stored artifact) -> student -> outputs.

This is the only module below the entry point that reads the config; everything it calls
takes plain keyword arguments. Artifacts land in the run directory:

==================  ===========================================================
``config.yaml``     the resolved config
``teacher.pt``      teacher logits/embeddings + split (:class:`TeacherArtifact`)
``codebook.pt``     codes + tokenizer embeddings, for ``loss=vq`` (:class:`CodebookArtifact`)
``student.pt``      deployable student (:mod:`g2m.export`)
``checkpoints/``    best-validation Lightning checkpoints of both stages
``logs/``           CSV metrics log (or W&B/TensorBoard files, per ``logger``)
``metrics.json``    dataset, setting, seed, teacher and student accuracies
==================  ===========================================================
"""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path
from typing import Any

import lightning.pytorch as pl
import torch
from hydra.utils import get_class, instantiate
from omegaconf import DictConfig, OmegaConf
from torch_geometric.data import Data

from g2m import __version__
from g2m.artifacts import CodebookArtifact, TeacherArtifact
from g2m.bench import median_milliseconds
from g2m.data import default_cache_dir, load_graph, make_split
from g2m.data.splits import NodeSplit, observed_subgraph
from g2m.errors import ConfigError
from g2m.export import save_student
from g2m.io import atomic_json, atomic_write
from g2m.lit import StudentSystem, TeacherSystem
from g2m.lit.codebook import CodebookSystem, encode_observed
from g2m.lit.fit import StageResult, fit_and_test
from g2m.models import GNNTeacher, MLPStudent, predict_full_graph
from g2m.summary import format_summary
from g2m.validate import check_config

log = logging.getLogger("g2m")


def build(node: DictConfig, **kwargs: Any) -> Any:
    """``hydra.utils.instantiate`` with plain Python containers as arguments."""
    return instantiate(node, **kwargs, _convert_="all")


def build_objective(node: DictConfig) -> Any:
    """Instantiate ``loss``; its ``name`` key describes the group and is not an argument."""
    return build(OmegaConf.create({k: v for k, v in node.items() if k != "name"}))


def load_data(cfg: DictConfig) -> tuple[Data, NodeSplit]:
    ds = cfg.dataset
    cache = Path(cfg.paths.cache_dir) if cfg.paths.cache_dir else default_cache_dir()
    local = Path(cfg.paths.data_dir) if cfg.paths.data_dir else None
    generator = OmegaConf.to_container(ds.generator) if "generator" in ds else None
    graph = load_graph(ds.name, ds.split, cache, local, synthetic=generator)
    split = make_split(
        graph,
        ds.split,
        cfg.seed,
        cfg.setting.held_out_fraction,
        ds.train_per_class,
        ds.val_per_class,
        ds.get("val_size", 500),
        ds.get("test_size", 1000),
    )
    return graph, split


def train_teacher(
    cfg: DictConfig, graph: Data, split: NodeSplit, run_dir: Path, logger: Any
) -> TeacherArtifact:
    t = cfg.teacher
    num_classes = int(graph.y.max()) + 1
    gnn = build(t.model, in_channels=graph.num_features, out_channels=num_classes)
    model = GNNTeacher(gnn, self_loops=t.self_loops)
    system = TeacherSystem(model, graph, split, lr=t.optim.lr, weight_decay=t.optim.weight_decay)
    result = fit_and_test(
        system,
        "teacher",
        run_dir,
        t.max_epochs,
        t.patience,
        logger,
        dict(cfg.trainer),
        on_tie=cfg.selection.on_tie,
    )
    observed = system.observed.cpu()
    model.cpu().eval()
    logits, embedding = predict_full_graph(model, observed.x, observed.adj_t)
    # predict_full_graph just ran the same forward pass: it is the warm-up
    inference_ms = median_milliseconds(lambda: model(observed.x, observed.adj_t), warmup=0)
    full_logits = torch.full((split.num_nodes, num_classes), float("nan"))
    full_embedding = torch.full((split.num_nodes, embedding.size(1)), float("nan"))
    full_logits[split.observed], full_embedding[split.observed] = logits, embedding
    return TeacherArtifact(
        full_logits,
        full_embedding,
        split,
        cfg.dataset.name,
        t.name,
        graph.num_features,
        metrics=stage_metrics(result, split),
        timings={"seconds": round(result.seconds, 2), "inference_ms": round(inference_ms, 3)},
    )


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
    result = fit_and_test(
        system,
        "codebook",
        run_dir,
        c.max_epochs,
        c.patience,
        logger,
        dict(cfg.trainer),
        on_tie=cfg.selection.on_tie,
    )
    embedding, codes = encode_observed(system)
    full_embedding = torch.full((split.num_nodes, embedding.size(1)), float("nan"))
    full_codes = torch.full((split.num_nodes,), -1, dtype=torch.long)
    observed = split.observed
    full_embedding[observed], full_codes[observed] = embedding.cpu(), codes.cpu()
    metrics = {
        "val_acc": result.val_acc,
        "test_acc": result.test["acc"],
        "best_epoch": result.best_epoch,
        "epochs": result.epochs_run,
        "size": int(c.size),
        "codes_used": int(codes.unique().numel()),
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
        timings={"seconds": round(result.seconds, 2)},
    )


def train_student(
    cfg: DictConfig,
    graph: Data,
    split: NodeSplit,
    teacher: TeacherArtifact,
    run_dir: Path,
    logger: Any,
    codebook: CodebookArtifact | None = None,
) -> tuple[MLPStudent, StageResult]:
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
        teacher.logits,
        teacher_embedding,
        split,
        lr=s.optim.lr,
        weight_decay=s.optim.weight_decay,
        batch_size=s.batch_size,
        seed=cfg.seed,
        edge_index=observed_edges(graph, split) if objective.needs_edges else None,
    )
    result = fit_and_test(
        system,
        "student",
        run_dir,
        s.max_epochs,
        s.patience,
        logger,
        dict(cfg.trainer),
        on_tie=cfg.selection.on_tie,
    )
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


STAGE_ARTIFACTS = {"teacher": TeacherArtifact, "codebook": CodebookArtifact}


def load_stored(
    stage: str, cfg: DictConfig, graph: Data, split: NodeSplit, run_dir: Path
) -> Any | None:
    """The ``stage`` artifact to reuse: ``<stage>.artifact`` if given, else this run's own
    ``<stage>.pt`` if it finished; None if there is neither.

    Either is checked against the run (dataset, features, split) before it is used.
    """
    configured = cfg[stage].artifact
    path = Path(configured) if configured else run_dir / f"{stage}.pt"
    if not configured and not path.is_file():
        return None
    artifact = STAGE_ARTIFACTS[stage].load(path)
    artifact.check_compatible(cfg.dataset.name, graph.num_features, split)
    log.info("Reusing %s artifact %s", stage, path)
    return artifact


def train_and_store(
    stage: str,
    train: Any,
    cfg: DictConfig,
    graph: Data,
    split: NodeSplit,
    run_dir: Path,
    logger: Any,
) -> Any:
    """Seed, run ``train`` (a stage function) and save its artifact as ``<stage>.pt``."""
    pl.seed_everything(cfg.seed, workers=True, verbose=False)
    artifact = train(cfg, graph, split, run_dir, logger)
    artifact.save(run_dir / f"{stage}.pt")
    return artifact


def log_student_artifact(logger: Any, path: Path, metadata: dict[str, Any]) -> None:
    """Attach the deployable student to the W&B run (other loggers have no artifacts)."""
    from lightning.pytorch.loggers import WandbLogger

    if isinstance(logger, WandbLogger):
        import wandb

        artifact = wandb.Artifact(
            f"student-{logger.experiment.id}", type="model", metadata=metadata
        )
        artifact.add_file(str(path))
        logger.experiment.log_artifact(artifact)


def git_revision() -> str | None:
    """The commit of the g2m checkout that ran (None outside a git checkout)."""
    import subprocess

    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"],
            cwd=Path(__file__).parent,
            capture_output=True,
            text=True,
            timeout=5,
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    if out.returncode != 0:
        return None
    return out.stdout.strip() or None


def close_logger(logger: Any) -> None:
    """Flush the logger; end the W&B run so the next run of a sweep starts its own."""
    from lightning.pytorch.loggers import WandbLogger

    if not logger:
        return
    logger.finalize("success")
    if isinstance(logger, WandbLogger):
        logger.experiment.finish()


def run(cfg: DictConfig, run_dir: Path) -> dict[str, Any]:
    """Run every stage for one seed; return (and write) the metrics.

    Bad input is rejected before anything is written. Rerunning into the same run directory
    resumes: a finished run is reported again, a stored ``teacher.pt`` skips the teacher, and
    an interrupted stage continues from its ``last.ckpt``.
    """
    started = time.perf_counter()
    run_dir = Path(run_dir)
    check_config(cfg)
    if (run_dir / "metrics.json").is_file():
        metrics = json.loads((run_dir / "metrics.json").read_text())
        print(format_summary(metrics, run_dir) + "\n(already complete: nothing was rerun)")
        return metrics
    graph, split = load_data(cfg)
    stored = load_stored("teacher", cfg, graph, split, run_dir)
    with_codebook = needs_codebook(cfg)
    stored_codebook = load_stored("codebook", cfg, graph, split, run_dir) if with_codebook else None
    run_dir.mkdir(parents=True, exist_ok=True)
    atomic_write(
        run_dir / "config.yaml", lambda tmp: tmp.write_text(OmegaConf.to_yaml(cfg, resolve=True))
    )
    logger = build(cfg.logger, save_dir=str(run_dir)) if cfg.logger else False
    if logger:
        logger.log_hyperparams(OmegaConf.to_container(cfg, resolve=True))
    teacher = stored or train_and_store(
        "teacher", train_teacher, cfg, graph, split, run_dir, logger
    )
    codebook = None
    if with_codebook:
        codebook = stored_codebook or train_and_store(
            "codebook", train_codebook, cfg, graph, split, run_dir, logger
        )
    pl.seed_everything(cfg.seed, workers=True, verbose=False)
    student, result = train_student(cfg, graph, split, teacher, run_dir, logger, codebook)
    metrics = {
        "dataset": cfg.dataset.name,
        "split": cfg.dataset.split,
        "setting": cfg.setting.name,
        "seed": int(cfg.seed),
        "teacher": {"name": cfg.teacher.name, **teacher.metrics},
        "student": {
            "name": cfg.student.name,
            "loss": cfg.loss.name,
            **stage_metrics(result, split),
        },
        "g2m_version": __version__,
    }
    if codebook is not None:
        metrics["codebook"] = codebook.metrics
    if cfg.get("tag"):
        metrics["tag"] = str(cfg.tag)
    provenance = {k: metrics[k] for k in ("dataset", "setting", "seed")} | {
        "teacher": cfg.teacher.name,
        "loss": cfg.loss.name,
        "teacher_metrics": metrics["teacher"],
        "student_metrics": metrics["student"],
        "g2m_version": __version__,
        "git_revision": git_revision(),
    }
    save_student(student, run_dir / "student.pt", provenance=provenance)
    log_student_artifact(logger, run_dir / "student.pt", provenance)
    timings = {
        "teacher_seconds": teacher.timings.get("seconds"),
        **({"codebook_seconds": codebook.timings.get("seconds")} if codebook else {}),
        # full-graph teacher vs feature-only student over every node, CPU, median of 5
        "teacher_inference_ms": teacher.timings.get("inference_ms"),
        "student_inference_ms": round(median_milliseconds(lambda: student(graph.x)), 3),
        "student_seconds": round(result.seconds, 2),
        "wall_seconds": round(time.perf_counter() - started, 2),
    }
    atomic_json(timings, run_dir / "timings.json")
    atomic_json(metrics, run_dir / "metrics.json")  # last: its presence marks a finished run
    close_logger(logger)
    print(format_summary(metrics, run_dir, timings["wall_seconds"]))
    return metrics
