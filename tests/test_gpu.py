"""GPU-only checks: skipped cleanly on machines without CUDA (such as CI)."""

from __future__ import annotations

import json

import pytest
import torch

from g2m.run import pipeline
from tests.conftest import compose_config, tiny_overrides

pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device"),
]


LOSSES = {
    "glnn": ("loss=glnn",),
    "ffg2m": ("loss=ffg2m",),
    "vq": ("loss=vq", "codebook.size=32", "codebook.dim=16", "codebook.max_epochs=20"),
}


@pytest.mark.parametrize("loss", sorted(LOSSES))
@pytest.mark.parametrize("setting", ["transductive", "inductive"])
def test_bf16_mixed_run_on_gpu(loss, setting, tmp_path, cache_dir):
    overrides = tiny_overrides(cache_dir, "trainer=gpu", f"setting={setting}", *LOSSES[loss])
    overrides = [o for o in overrides if o != "trainer.accelerator=cpu"]
    metrics = pipeline.run(compose_config(overrides), tmp_path)
    assert metrics["teacher"]["test_acc"] > 0.6
    assert metrics["student"]["test_acc"] > 0.5


def test_products_config_runs_every_stage_on_gpu(tmp_path, cache_dir):
    """A small draw of the products-scale graph, generated on the GPU, all stages in bf16."""
    overrides = tiny_overrides(
        cache_dir,
        "trainer=gpu",
        "dataset.generator.num_nodes=20000",
        "dataset.generator.num_classes=47",
        "dataset.generator.num_features=100",
        "dataset.generator.avg_degree=50.52",
        "loss=vq",
        "codebook.max_epochs=3",
        "codebook.edges_per_step=10000",
    )
    overrides = [o for o in overrides if o not in ("trainer.accelerator=cpu", "dataset=synthetic")]
    cfg = compose_config(["dataset=synthetic-products", *overrides])
    metrics = pipeline.run(cfg, tmp_path)
    timings = json.loads((tmp_path / "timings.json").read_text())
    assert timings["inference_device"] == "cuda" and timings["peak_gpu_memory_gb"] > 0
    assert timings["student_inference_backend"] == "fused-bfloat16"  # as it would be served
    assert metrics["teacher"]["test_acc"] > 0.1  # far above chance (1/47) after 30 epochs
