"""Plain, checked settings of a run's stages: no Lightning, no PyG (built at the top)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from g2m.errors import ConfigError


def _is_number(value: Any, low: float, inclusive: bool) -> bool:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return False
    return value >= low if inclusive else value > low


def _is_count(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 1


@dataclass(frozen=True)
class StageSchedule:
    """How one stage trains: Adam's settings, the epoch budget and early stopping.

    Args:
        stage: ``teacher``, ``codebook``, ``student`` ...: names checkpoints, logged metrics
            (``<stage>/val/acc``) and the config keys in messages.
        lr: Adam's learning rate (> 0). weight_decay: Adam's L2 penalty (>= 0).
        max_epochs: the most epochs (>= 1). patience: epochs without a better validation
            accuracy before the stage stops (>= 1).
    """

    stage: str
    lr: float
    weight_decay: float
    max_epochs: int
    patience: int

    def __post_init__(self) -> None:
        checks = [
            ("optim.lr", self.lr, _is_number(self.lr, 0, False), "a number > 0"),
            (
                "optim.weight_decay",
                self.weight_decay,
                _is_number(self.weight_decay, 0, True),
                "a number >= 0",
            ),
            ("max_epochs", self.max_epochs, _is_count(self.max_epochs), "an integer >= 1"),
            ("patience", self.patience, _is_count(self.patience), "an integer >= 1"),
        ]
        problems = [f"  {self.stage}.{k}={v!r}: expected {e}" for k, v, ok, e in checks if not ok]
        if problems:
            raise ConfigError("Invalid configuration:\n" + "\n".join(problems))


PRECISIONS = ("32-true", "32", "bf16-mixed", "bf16-true", "16-mixed", "16-true", "64-true", "64")


@dataclass(frozen=True)
class TrainerSettings:
    """What every stage's Lightning ``Trainer`` shares.

    Attributes:
        kwargs: ``Trainer`` arguments (``accelerator``, ``devices``, ``precision``, ...,
            ``enable_progress_bar``) plus ``ddp``, the student stage's DDP options.
        on_tie: the selection tie rule of :mod:`g2m.lit.selection` (``first``/``latest``).
    """

    kwargs: dict[str, Any]
    on_tie: str = "latest"

    def __post_init__(self) -> None:
        accelerator = self.kwargs.get("accelerator", "auto")
        if accelerator in ("gpu", "cuda"):
            import torch

            if not torch.cuda.is_available():
                raise ConfigError(
                    f"trainer.accelerator={accelerator} but this machine has no CUDA device "
                    "torch can see: use trainer=default (the GPU when there is one, else the "
                    "CPU) or trainer=cpu."
                )
            if self.devices > torch.cuda.device_count():
                raise ConfigError(
                    f"trainer.devices={self.kwargs.get('devices')} asks for {self.devices} GPUs "
                    f"and {torch.cuda.device_count()} are visible."
                )
        self._check_precision(accelerator)
        if (
            not isinstance(self.kwargs.get("devices", 1), int | list | tuple | str)
            or self.devices < 1
        ):
            raise ConfigError(
                f"trainer.devices={self.kwargs.get('devices')!r}: expected an integer >= 1 or a "
                "list of device ids."
            )

    def _check_precision(self, accelerator: str) -> None:
        """Refuse a precision Lightning does not know, and fp16 where it would not run as
        asked (on the CPU Lightning runs ``16-mixed`` as bf16)."""
        precision = str(self.kwargs.get("precision", "32-true"))
        if precision not in PRECISIONS:
            raise ConfigError(
                f"trainer.precision={precision!r}: expected one of {', '.join(PRECISIONS)}."
            )
        if precision.startswith("16") or precision == "16":
            import torch

            on_cpu = accelerator == "cpu" or not torch.cuda.is_available()
            if on_cpu:
                raise ConfigError(
                    f"trainer.precision={precision} needs a GPU (on the CPU Lightning would run "
                    "bf16 instead): use bf16-mixed or 32-true here."
                )

    @property
    def devices(self) -> int:
        return device_count(self.kwargs)


DETERMINISM = (True, False, "warn", "cpu")


def runs_on_gpu(accelerator: str) -> bool:
    """Whether ``trainer.accelerator`` puts the stages on a GPU on this machine."""
    import torch

    return accelerator in ("gpu", "cuda", "auto") and torch.cuda.is_available()


def deterministic_kernels(value: Any, on_gpu: bool) -> bool | str:
    """``trainer.deterministic`` as Lightning takes it (``True``, ``False`` or ``"warn"``).

    ``"cpu"`` (the default) turns PyTorch's deterministic algorithms on for a CPU run only:
    there some kernels (the backward of a gather, ``index_put_(accumulate=True)``, as in the
    codebook stage's edge scores) otherwise add floats from several threads in a racing
    order, so two runs of one seed part at the 7th digit; the deterministic variants cost
    little on the CPU. On a GPU the fastest kernels are kept unless asked otherwise.
    """
    if value not in DETERMINISM or isinstance(value, int) and not isinstance(value, bool):
        raise ConfigError(
            f"trainer.deterministic={value!r}: expected true, false, warn or cpu "
            "(deterministic kernels on the CPU only)."
        )
    if value == "cpu":
        return not on_gpu
    return value


def device_count(trainer_kwargs: dict[str, Any]) -> int:
    """How many devices the trainer config asks for (a list counts its entries)."""
    devices = trainer_kwargs.get("devices", 1)
    if isinstance(devices, list | tuple):
        return len(devices)
    if isinstance(devices, int) and not isinstance(devices, bool):
        return devices
    return 1  # "auto" and friends are resolved by Lightning; single-device stages pin 1


@dataclass(frozen=True)
class StudentSettings:
    """The student stage's own settings.

    Args:
        schedule: Adam's settings, epochs, patience.
        batch_size: observed nodes per training step (None: one full batch).
        distill_val: keep the validation nodes in the distillation pool (GLNN's CPF
            protocol); false leaves them out, so validation measures unseen nodes.
        steps_per_call: training batches per Lightning step (:mod:`g2m.lit.student_steps`).
        cuda_graph: replay full-size steps from a CUDA graph where the run allows it.
    """

    schedule: StageSchedule
    batch_size: int | None
    distill_val: bool
    steps_per_call: int = 1
    cuda_graph: bool = False

    def __post_init__(self) -> None:
        steps = self.steps_per_call
        if isinstance(steps, bool) or not isinstance(steps, int) or steps < 1:
            raise ConfigError(
                f"Invalid configuration:\n  student.steps_per_call={steps!r}: expected an "
                "integer >= 1"
            )
        size = self.batch_size
        if size is not None and (isinstance(size, bool) or not isinstance(size, int) or size < 1):
            raise ConfigError(
                f"Invalid configuration:\n  student.batch_size={size!r}: expected an integer "
                ">= 1 (or null: one full batch)"
            )
        if not isinstance(self.distill_val, bool):
            raise ConfigError(
                f"Invalid configuration:\n  student.distill_val={self.distill_val!r}: "
                "expected true or false"
            )
