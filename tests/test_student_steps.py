"""Several batches per Lightning step (and CUDA graphs, on a GPU): the same training."""

from __future__ import annotations

import pytest
import torch

from g2m.lit.student_steps import StepGroups
from g2m.run import pipeline
from tests.conftest import compose_config, tiny_overrides

BATCHED = ("student.batch_size=64", "student.model.dropout=0.5", "student.max_epochs=15")


def test_step_groups_keep_every_batch_in_order():
    batches = [torch.tensor([i]) for i in range(7)]
    groups = list(StepGroups(batches, 3))
    assert [len(g) for g in groups] == [3, 3, 1] and len(StepGroups(batches, 3)) == 3
    assert [int(b) for g in groups for b in g] == list(range(7))


GROUPINGS = [
    ("student.steps_per_call=4",),
    ("student.steps_per_call=100",),
    ("student.steps_per_call=3", "student.cuda_graph=true"),
]


@pytest.mark.slow
@pytest.mark.parametrize("extra", GROUPINGS)
def test_several_batches_per_lightning_step_train_the_same_student_on_cpu(
    extra, tmp_path, cache_dir
):
    """On the CPU the optimiser steps, their order and the dropout draws are the same, so
    the metrics are identical (cuda_graph is off where there is no GPU)."""
    base = pipeline.run(compose_config(tiny_overrides(cache_dir, *BATCHED)), tmp_path / "one")
    grouped = pipeline.run(
        compose_config(tiny_overrides(cache_dir, *BATCHED, *extra)), tmp_path / "many"
    )
    assert grouped["student"] == base["student"]


@pytest.mark.slow
def test_an_interrupted_grouped_stage_resumes(tmp_path, cache_dir):
    overrides = tiny_overrides(cache_dir, *BATCHED, "student.steps_per_call=5")
    first = pipeline.run(compose_config(overrides), tmp_path / "a")
    again = pipeline.run(compose_config(overrides), tmp_path / "a")  # reported again
    assert again == first


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
@pytest.mark.parametrize("precision", ["32-true", "bf16-mixed"])
def test_a_graphed_student_stage_learns_like_the_eager_one(precision, tmp_path, cache_dir):
    gpu = [o for o in tiny_overrides(cache_dir, *BATCHED) if o != "trainer.accelerator=cpu"]
    gpu += [
        "trainer.accelerator=gpu",
        f"trainer.precision={precision}",
        "dataset.generator.num_nodes=2000",
    ]
    eager = pipeline.run(compose_config([*gpu, "student.steps_per_call=8"]), tmp_path / "eager")
    graphed = pipeline.run(
        compose_config([*gpu, "student.steps_per_call=8", "student.cuda_graph=true"]),
        tmp_path / "graphed",
    )
    # other dropout draws (the graph-safe generator), the same task: within a few points
    assert abs(graphed["student"]["val_acc"] - eager["student"]["val_acc"]) < 0.1
    assert graphed["student"]["test_acc"] > 0.6
    # Lightning sees every replayed step: the stage runs its epochs and selects one of them
    assert graphed["student"]["epochs"] > 10 and graphed["student"]["best_epoch"] > 0
