"""What a finished run leaves behind: metrics.json, timings.json, the student's provenance,
and the logger's last words."""

from __future__ import annotations

import subprocess
import time
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from g2m import __version__
from g2m.bench.timing import median_ms
from g2m.data.splits import NodeSplit
from g2m.lit.distributed import device_count
from g2m.lit.fit import StageResult
from g2m.models import MLPStudent
from g2m.run.artifacts import TeacherArtifact
from g2m.run.extra import DistillationTargets, StageArtifact
from g2m.run.plan import RunPlan


def run_metrics(
    plan: RunPlan,
    teacher: TeacherArtifact | None,
    artifacts: dict[str, StageArtifact],
    result: StageResult,
    split: NodeSplit,
    targets: DistillationTargets,
) -> dict[str, Any]:
    """metrics.json: the run's names, then every stage's accuracies (fractions); a run that
    trained no teacher (``loss=supervised``) has no teacher block."""
    names = plan.names
    metrics = {
        "dataset": names.dataset,
        "split": names.split,
        "setting": names.setting,
        "seed": plan.seed,
        **({"teacher": {"name": names.teacher, **teacher.metrics}} if teacher else {}),
        "student": {
            "name": names.student,
            "loss": names.loss,
            **result.metrics(split.inductive),
        },
        "g2m_version": __version__,
    }
    for name, artifact in artifacts.items():
        metrics[name] = artifact.metrics
    if artifacts:
        metrics["student"]["soft_labels"] = targets.source
    if names.tag:
        metrics["tag"] = names.tag
    return metrics


def student_provenance(plan: RunPlan, metrics: dict[str, Any]) -> dict[str, Any]:
    """Where the shipped student came from (stored inside ``student.pt``)."""
    return {k: metrics[k] for k in ("dataset", "setting", "seed")} | {
        "teacher": plan.names.teacher if "teacher" in metrics else None,
        "loss": plan.names.loss,
        "teacher_metrics": metrics.get("teacher"),
        "student_metrics": metrics["student"],
        "g2m_version": __version__,
        "git_revision": git_revision(),
    }


def git_revision() -> str | None:
    """The commit of the g2m checkout that ran (None outside a git checkout)."""
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


def run_device(trainer_kwargs: dict[str, Any]) -> torch.device:
    """The device the stages train on (where inference is timed too)."""
    gpu = trainer_kwargs.get("accelerator") in ("gpu", "cuda", "auto")
    return torch.device("cuda" if gpu and torch.cuda.is_available() else "cpu")


def peak_gpu_memory(device: torch.device) -> dict[str, float]:
    """The most GPU memory PyTorch held at once in this process (all stages), if on GPU."""
    if device.type != "cuda":
        return {}
    return {"peak_gpu_memory_gb": round(torch.cuda.max_memory_allocated(device) / 2**30, 2)}


def run_timings(
    plan: RunPlan,
    inputs: Tensor,
    teacher: TeacherArtifact | None,
    artifacts: dict[str, StageArtifact],
    student: MLPStudent,
    result: StageResult,
    started: float,
) -> dict[str, Any]:
    """timings.json: stage seconds, training rates, and full-graph teacher vs feature-only
    student inference over every node (median of 5, on the device the run trained on). The
    student runs as it would be served: :class:`g2m.serve.inference.StudentInference` with
    its automatic back-end (the fused bf16 kernel on a GPU where it applies, the fp32 module
    on the CPU), named in ``student_inference_backend``; ``inputs`` are the ``[N, F]`` inputs
    the student takes (the node features, and a stage's columns after them)."""
    from g2m.serve.inference import StudentInference

    device = run_device(plan.trainer.kwargs)
    engine, x = StudentInference(student, device), inputs.to(device)
    stages: dict[str, Any] = {}
    teacher_timings = teacher.timings if teacher is not None else {}
    for name, artifact in artifacts.items():
        stages[f"{name}_seconds"] = artifact.timings.get("seconds")
        stages[f"{name}_epoch_seconds"] = artifact.timings.get("epoch_seconds")
    return {
        "teacher_seconds": teacher_timings.get("seconds"),
        "teacher_epoch_seconds": teacher_timings.get("epoch_seconds"),
        **stages,
        "teacher_inference_ms": teacher_timings.get("inference_ms"),
        "student_inference_ms": round(median_ms(lambda: engine(x), device, warmup=2), 3),
        "student_inference_backend": f"{engine.backend}-{str(engine.dtype).split('.')[-1]}",
        "inference_device": device.type,
        "student_seconds": round(result.seconds, 2),
        "student_devices": device_count(plan.trainer.kwargs),
        **{f"student_{k}": v for k, v in result.rates().items()},
        **peak_gpu_memory(device),
        "threads": torch.get_num_threads(),
        "wall_seconds": round(time.perf_counter() - started, 2),
    }


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
