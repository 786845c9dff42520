"""GPU-only checks: skipped cleanly on machines without CUDA (such as CI)."""

from __future__ import annotations

import pytest
import torch

from g2m import pipeline
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
