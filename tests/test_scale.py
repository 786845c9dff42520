"""The products-scale synthetic dataset and a run of every stage on a small draw of it."""

from __future__ import annotations

import json

import pytest
import torch

from g2m.run import pipeline
from tests.conftest import compose_config, tiny_overrides


def test_products_config_matches_ogbn_products():
    cfg = compose_config(["dataset=synthetic-products", "loss=vq"])
    g = cfg.dataset.generator
    assert (g.num_nodes, g.num_classes, g.num_features) == (2_449_029, 47, 100)
    # 61,859,140 undirected edges in ogbn-products; the CSBM draws N * degree / 2 of them
    assert abs(g.num_nodes * g.avg_degree / 2 - 61_859_140) / 61_859_140 < 1e-3
    assert g.device == "auto"
    # the per-dataset settings are picked up: GLNN's products sizes, sampled edges
    assert cfg.teacher.model.num_layers == 3 and cfg.teacher.model.norm == "batch_norm"
    assert cfg.student.model.norm == "batch" and cfg.student.batch_size == 4096
    assert cfg.codebook.edges_per_step == 1_000_000


@pytest.mark.slow
def test_every_stage_runs_on_a_small_draw_of_the_products_graph(tmp_path, cache_dir):
    overrides = tiny_overrides(
        cache_dir,
        "dataset=synthetic-products",
        "dataset.generator.num_nodes=3000",
        "dataset.generator.avg_degree=10",
        "dataset.generator.device=cpu",
        "split.train_per_class=5",
        "split.val_per_class=5",
        "loss=vq",
        "teacher.max_epochs=3",
        "codebook.max_epochs=2",
        "codebook.edges_per_step=500",
        "student.max_epochs=2",
        "student.batch_size=512",
    )
    overrides = [o for o in overrides if not o.startswith("dataset=synthetic")]
    cfg = compose_config(["dataset=synthetic-products", *overrides])
    metrics = pipeline.run(cfg, tmp_path)
    assert metrics["dataset"] == "synthetic-products"
    assert {"teacher", "codebook", "student"} <= set(metrics)
    timings = json.loads((tmp_path / "timings.json").read_text())
    assert timings["inference_device"] == "cpu"
    assert timings["student_inference_backend"] == "eager-float32"
    assert timings["student_nodes_per_s"] > 0 and timings["student_epochs_timed"] == 2
    # where the time went, phase by phase, in order; together they are the whole run
    phases = timings["phase_seconds"]
    assert list(phases) == ["prepare", "teacher", "codebook", "student", "baseline",
                            "student_artifact", "inference_timing"]  # fmt: skip
    assert phases["teacher"] >= timings["teacher_seconds"]
    assert phases["codebook"] >= timings["codebook_seconds"]
    assert phases["student"] >= timings["student_seconds"]
    assert sum(phases.values()) >= timings["wall_seconds"] - 0.1
    artifact = torch.load(tmp_path / "teacher.pt", weights_only=False)
    assert artifact["logits"].shape == (3000, cfg.dataset.generator.num_classes)
