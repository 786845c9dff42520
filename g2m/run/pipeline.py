"""Stage order of a g2m run: data -> teacher -> [codebook] -> student -> outputs.

With :mod:`g2m.run.stages` (how each stage trains) this is the only code below the entry point
that reads the config; everything they call takes plain keyword arguments. A stage whose
artifact is already stored (``<stage>.artifact=`` or this run's own file) is not retrained.
Artifacts land in the run directory:

==================  ===========================================================
``config.yaml``     the resolved config
``teacher.pt``      teacher logits/embeddings + split (:class:`TeacherArtifact`)
``codebook.pt``     codes + tokenizer embeddings, for ``loss=vq`` (:class:`CodebookArtifact`)
``student.pt``      deployable student (:mod:`g2m.serve.export`)
``checkpoints/``    best-validation Lightning checkpoints of both stages
``logs/``           CSV metrics log (or W&B/TensorBoard files, per ``logger``)
``metrics.json``    dataset, setting, seed, teacher and student accuracies
``timings.json``    stage seconds, training rates, inference times, peak GPU memory
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
from omegaconf import DictConfig, OmegaConf
from torch_geometric.data import Data

from g2m import __version__
from g2m.bench.timing import median_ms
from g2m.data import default_cache_dir, load_graph, make_split
from g2m.data.splits import NodeSplit
from g2m.io import atomic_json, atomic_write
from g2m.lit.distributed import device_count, is_secondary_rank, pin_cuda_device
from g2m.lit.fit import StageResult
from g2m.models import MLPStudent
from g2m.run.artifacts import CodebookArtifact, TeacherArtifact
from g2m.run.stages import (
    build,
    needs_codebook,
    soft_label_source,
    stage_metrics,
    stage_rates,
    train_codebook,
    train_student,
    train_teacher,
)
from g2m.run.summary import format_summary
from g2m.run.validate import check_config
from g2m.serve.artifact import save_student

log = logging.getLogger("g2m")


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


def run_device(cfg: DictConfig) -> torch.device:
    """The device the stages train on (where inference is timed too)."""
    gpu = cfg.trainer.accelerator in ("gpu", "cuda", "auto") and torch.cuda.is_available()
    return torch.device("cuda" if gpu else "cpu")


def join_student_stage(
    cfg: DictConfig,
    graph: Data,
    split: NodeSplit,
    teacher: TeacherArtifact | None,
    codebook: CodebookArtifact | None,
    run_dir: Path,
) -> dict[str, Any]:
    """A DDP rank >= 1 (:mod:`g2m.lit.distributed`): train the student with rank 0, write
    nothing. Rank 0 stored the teacher (and codebook) before the ranks were started."""
    if teacher is None or (needs_codebook(cfg) and codebook is None):
        raise RuntimeError(
            f"a DDP rank >= 1 found no finished teacher/codebook artifact in {run_dir}: "
            "only rank 0 trains the full-graph stages."
        )
    pl.seed_everything(cfg.seed, workers=True, verbose=False)
    _, result = train_student(cfg, graph, split, teacher, run_dir, False, codebook)
    return {"student": stage_metrics(result, split)}


def run_timings(
    cfg: DictConfig,
    graph: Data,
    teacher: TeacherArtifact,
    codebook: CodebookArtifact | None,
    student: MLPStudent,
    result: StageResult,
    started: float,
) -> dict[str, Any]:
    """timings.json: stage seconds, training rates, and full-graph teacher vs feature-only
    student inference over every node (median of 5, on the device the run trained on). The
    student runs as it would be served: :class:`g2m.serve.inference.StudentInference` with its
    automatic back-end (the fused bf16 kernel on a GPU where it applies, the fp32 module on
    the CPU), named in ``student_inference_backend``."""
    from g2m.serve.inference import StudentInference

    device = run_device(cfg)
    engine, x = StudentInference(student, device), graph.x.to(device)
    return {
        "teacher_seconds": teacher.timings.get("seconds"),
        "teacher_epoch_seconds": teacher.timings.get("epoch_seconds"),
        **({"codebook_seconds": codebook.timings.get("seconds")} if codebook else {}),
        **({"codebook_epoch_seconds": codebook.timings.get("epoch_seconds")} if codebook else {}),
        "teacher_inference_ms": teacher.timings.get("inference_ms"),
        "student_inference_ms": round(median_ms(lambda: engine(x), device, warmup=2), 3),
        "student_inference_backend": f"{engine.backend}-{str(engine.dtype).split('.')[-1]}",
        "inference_device": device.type,
        "student_seconds": round(result.seconds, 2),
        "student_devices": device_count(dict(cfg.trainer)),
        **{f"student_{k}": v for k, v in stage_rates(result).items()},
        **peak_gpu_memory(device),
        "wall_seconds": round(time.perf_counter() - started, 2),
    }


def peak_gpu_memory(device: torch.device) -> dict[str, float]:
    """The most GPU memory PyTorch held at once in this process (all stages), if on GPU."""
    if device.type != "cuda":
        return {}
    return {"peak_gpu_memory_gb": round(torch.cuda.max_memory_allocated(device) / 2**30, 2)}


def run(cfg: DictConfig, run_dir: Path) -> dict[str, Any]:
    """Run every stage for one seed; return (and write) the metrics.

    Bad input is rejected before anything is written. Rerunning into the same run directory
    resumes: a finished run is reported again, a stored ``teacher.pt`` skips the teacher, and
    an interrupted stage continues from its ``last.ckpt``. With ``trainer.devices=N`` the
    student stage runs on N devices (:mod:`g2m.lit.distributed`); rank 0 writes every file.
    """
    started = time.perf_counter()
    run_dir = Path(run_dir)
    check_config(cfg)
    if (run_dir / "metrics.json").is_file():
        metrics = json.loads((run_dir / "metrics.json").read_text())
        print(format_summary(metrics, run_dir) + "\n(already complete: nothing was rerun)")
        return metrics
    pin_cuda_device(dict(cfg.trainer))
    graph, split = load_data(cfg)
    stored = load_stored("teacher", cfg, graph, split, run_dir)
    with_codebook = needs_codebook(cfg)
    stored_codebook = load_stored("codebook", cfg, graph, split, run_dir) if with_codebook else None
    if is_secondary_rank():
        return join_student_stage(cfg, graph, split, stored, stored_codebook, run_dir)
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
        metrics["student"]["soft_labels"] = soft_label_source(cfg)
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
    timings = run_timings(cfg, graph, teacher, codebook, student, result, started)
    atomic_json(timings, run_dir / "timings.json")
    atomic_json(metrics, run_dir / "metrics.json")  # last: its presence marks a finished run
    close_logger(logger)
    print(format_summary(metrics, run_dir, timings["wall_seconds"]))
    return metrics
