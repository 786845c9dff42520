"""Validation-accuracy selection: the checkpoint, early stopping and the tie rule."""

from __future__ import annotations

import lightning.pytorch as pl
import pytest
import torch

from g2m.lit.fit import StageSchedule, TrainerSettings, fit_and_test
from g2m.lit.loaders import full_batch_loader
from g2m.lit.selection import selection_callbacks
from tests.conftest import cpf_split


class ScriptedAccuracy(pl.LightningModule):
    """Reports a scripted validation accuracy per epoch; ``test`` reports the epoch tested."""

    def __init__(self, val_accs):
        super().__init__()
        self.val_accs = val_accs
        self.weight = torch.nn.Parameter(torch.zeros(1))
        self.register_buffer("trained_epochs", torch.zeros(()))

    def training_step(self, batch, batch_idx):
        self.trained_epochs += 1
        return (self.weight**2).sum() + 1.0

    def validation_step(self, batch, batch_idx):
        self.log("toy/val/acc", self.val_accs[self.current_epoch])

    def test_step(self, batch, batch_idx):
        self.log("toy/test/acc", self.trained_epochs.clone())

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.1)

    def train_dataloader(self):
        return full_batch_loader()

    val_dataloader = test_dataloader = train_dataloader


def run_scripted(accs, patience, on_tie, run_dir):
    return fit_and_test(
        ScriptedAccuracy(accs),
        StageSchedule("toy", lr=0.1, weight_decay=0.0, max_epochs=len(accs), patience=patience),
        TrainerSettings({"accelerator": "cpu", "enable_progress_bar": False}, on_tie),
        run_dir,
        logger=False,
        full_graph=True,
    )


@pytest.mark.parametrize(("on_tie", "best_epoch"), [("first", 1), ("latest", 3)])
def test_tie_rule_picks_the_checkpoint(on_tie, best_epoch, tmp_path):
    accs = [0.5, 0.7, 0.6, 0.7, 0.6, 0.6, 0.6, 0.6]
    result = run_scripted(accs, patience=3, on_tie=on_tie, run_dir=tmp_path)
    assert result.best_epoch == best_epoch
    assert result.val_acc == pytest.approx(0.7)
    # the test ran on the restored best checkpoint, not on the last weights
    assert result.test["acc"] == best_epoch + 1


@pytest.mark.parametrize(("on_tie", "epochs_run"), [("first", 4), ("latest", 6)])
def test_patience_restarts_on_a_tie_only_under_latest(on_tie, epochs_run, tmp_path):
    # best at epoch 1, tie at epoch 3: "first" stops after epoch 3 (patience 2 used up),
    # "latest" restarts the count at epoch 3 and stops after epoch 5
    accs = [0.5, 0.7, 0.6, 0.7, 0.6, 0.6, 0.6, 0.6, 0.6, 0.6]
    result = run_scripted(accs, patience=2, on_tie=on_tie, run_dir=tmp_path)
    assert result.epochs_run == epochs_run


def test_unknown_tie_rule_is_rejected(tmp_path):
    with pytest.raises(ValueError, match="first"):
        selection_callbacks("x/val/acc", 3, str(tmp_path), "best")


def test_validation_nodes_can_be_left_out_of_the_distillation_pool(tiny_graph):
    from g2m.lit.student import StudentSystem
    from g2m.losses.glnn import SoftLogitDistillation
    from g2m.models.student import MLPStudent

    split = cpf_split(tiny_graph, 0, 0.2)
    logits = torch.randn(tiny_graph.num_nodes, 3)

    def system(distill_val):
        student = MLPStudent(tiny_graph.num_features, 8, 3)
        return StudentSystem(
            student,
            SoftLogitDistillation(),
            tiny_graph.x,
            tiny_graph.y,
            logits,
            None,
            split,
            0.01,
            0.0,
            None,
            distill_val=distill_val,
        )

    assert torch.equal(system(True).pool, split.observed)
    pool = system(False).pool
    assert not torch.isin(pool, split.val).any()
    assert torch.isin(pool, split.observed).all()
    assert pool.numel() == split.observed.numel() - split.val.numel()


def test_distill_val_must_be_a_boolean(tmp_path):
    from g2m.errors import ConfigError
    from g2m.run import pipeline
    from tests.conftest import compose_config

    with pytest.raises(ConfigError, match="student.distill_val"):
        pipeline.run(compose_config(["student.distill_val=maybe"]), tmp_path / "run")
