"""Guards for long unattended runs: divergence detection, atomic and resumable checkpoints.

- :class:`StopOnNonFiniteLoss` stops a stage with :class:`TrainingDivergedError` once a
  training loss is NaN or infinite (checked every 64 steps and before each validation, so
  no bad weights are validated or saved); the best checkpoint written so far stays on disk.
- :class:`AtomicCheckpointIO` writes every Lightning checkpoint to a temporary file and
  renames it, so a kill never leaves a truncated ``best.ckpt`` or ``last.ckpt``.
- :class:`ResumableRNG` (a mixin for the systems) stores the global torch (and CUDA) RNG,
  the shuffling generator and each stage's own generators (the codebook stage's
  negative-edge sampler) in each checkpoint and restores them on resume, so a resumed stage
  draws the same dropout masks, batch orders and samples as an uninterrupted one.
"""

from __future__ import annotations

from typing import Any

import lightning.pytorch as pl
import torch
from lightning.fabric.plugins.io.torch_io import TorchCheckpointIO
from lightning.pytorch.callbacks import Callback

from g2m.errors import TrainingDivergedError
from g2m.io import atomic_write


class StopOnNonFiniteLoss(Callback):
    """Raise :class:`TrainingDivergedError` once a training loss has been NaN or infinite.

    Losses are checked on the device (a flag OR-ed in every step) and the flag is read on
    the host every ``check_every`` steps and before each validation, so a healthy run pays
    no per-step GPU synchronisation and a diverged one stops before its weights are
    validated or checkpointed. Under DDP the decision is taken jointly (any rank), so every
    rank stops at the same step.
    """

    def __init__(self, stage: str, checkpoint_dir: str, check_every: int = 64):
        self.stage, self.checkpoint_dir, self.check_every = stage, checkpoint_dir, check_every
        self.bad: torch.Tensor | None = None

    def on_train_batch_end(
        self,
        trainer: pl.Trainer,
        pl_module: pl.LightningModule,
        outputs: Any,
        batch: Any,
        batch_idx: int,
    ) -> None:
        loss = outputs["loss"] if isinstance(outputs, dict) else outputs
        if loss is None:
            return
        bad = ~torch.isfinite(loss.detach()).all()
        self.bad = bad if self.bad is None else self.bad | bad
        if (batch_idx + 1) % self.check_every == 0:
            self._check(trainer)

    def on_validation_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if trainer.training:
            self._check(trainer)

    def on_train_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._check(trainer)

    def _check(self, trainer: pl.Trainer) -> None:
        local = self.bad is not None and bool(self.bad)
        if not trainer.strategy.reduce_boolean_decision(local, all=False):
            return
        raise TrainingDivergedError(
            f"The {self.stage} training loss became NaN or infinite in epoch "
            f"{trainer.current_epoch} (by step {trainer.global_step}); the stage was stopped. "
            f"The last good checkpoints are in {self.checkpoint_dir}. Lower "
            f"{self.stage}.optim.lr or check the features for extreme values."
        )


class AtomicCheckpointIO(TorchCheckpointIO):
    """Lightning checkpoint I/O through a temporary file and an atomic rename."""

    def save_checkpoint(self, checkpoint: dict, path: Any, storage_options: Any = None) -> None:
        atomic_write(
            path,
            lambda tmp: super(AtomicCheckpointIO, self).save_checkpoint(
                checkpoint, tmp, storage_options
            ),
        )


class ResumableRNG:
    """Mixin for LightningModules: keep RNG streams in checkpoints (see module docstring).

    Saved with every checkpoint and restored on resume: the global torch RNG (and CUDA's,
    where it is in use), the shuffling generator, and every generator a system made with
    :meth:`stage_generator` (e.g. the codebook stage's negative-edge sampler).
    """

    shuffle_generator: torch.Generator | None = None
    _pending_shuffle_state: torch.Tensor | None = None
    _stage_generators: dict[str, torch.Generator] | None = None
    _pending_stage_states: dict[str, torch.Tensor] | None = None

    def on_save_checkpoint(self, checkpoint: dict) -> None:
        checkpoint["g2m_rng"] = {
            "torch": torch.get_rng_state(),
            "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_initialized() else None,
            "shuffle": None
            if self.shuffle_generator is None
            else self.shuffle_generator.get_state(),
            "stage": {k: g.get_state() for k, g in (self._stage_generators or {}).items()},
        }

    def on_load_checkpoint(self, checkpoint: dict) -> None:
        state = checkpoint.get("g2m_rng")
        if state is None:
            return
        torch.set_rng_state(state["torch"])
        if state.get("cuda") is not None and torch.cuda.is_available():
            torch.cuda.set_rng_state_all(state["cuda"])
        self._pending_shuffle_state = state["shuffle"]
        self._pending_stage_states = dict(state.get("stage") or {})

    def seeded_generator(self, seed: int) -> torch.Generator:
        """The shuffling generator: seeded, or continued from a resumed checkpoint."""
        self.shuffle_generator = torch.Generator().manual_seed(seed)
        if self._pending_shuffle_state is not None:
            self.shuffle_generator.set_state(self._pending_shuffle_state)
            self._pending_shuffle_state = None
        return self.shuffle_generator

    def stage_generator(self, name: str, seed: int, device: torch.device) -> torch.Generator:
        """The generator ``name`` on ``device``: seeded, or continued from a resumed
        checkpoint; saved in every checkpoint from now on."""
        if self._stage_generators is None:
            self._stage_generators = {}
        generator = self._stage_generators.get(name)
        if generator is not None and generator.device == device:
            return generator
        generator = torch.Generator(device=device).manual_seed(seed)
        pending = (self._pending_stage_states or {}).pop(name, None)
        if pending is not None:
            generator.set_state(pending)
        self._stage_generators[name] = generator
        return generator
