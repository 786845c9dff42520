"""ddp_student_step.py: both loops run on CPU and report a positive throughput."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import torch

SCRIPT = Path(__file__).resolve().with_name("ddp_student_step.py")
LINE = re.compile(r"^(.+): epochs .* ([0-9.]+) ms/step, ([0-9.]+) M nodes/s$", re.M)


def run_script(*args: str) -> list[tuple[str, float, float]]:
    env = {**os.environ, "PYTHONWARNINGS": "ignore"}
    result = subprocess.run(
        [sys.executable, str(SCRIPT), *args, "--device", "cpu", "--nodes", "3000", "--epochs", "2"],
        capture_output=True,
        text=True,
        env=env,
        cwd=SCRIPT.parents[1],
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return [(label, float(ms), float(rate)) for label, ms, rate in LINE.findall(result.stdout)]


@pytest.mark.parametrize(
    "args, label",
    [
        (("raw",), "raw, 1 process(es)"),
        (("lightning", "one"), "lightning one"),
        (("lightning", "ddp-g2m"), "lightning ddp-g2m"),  # two gloo processes
    ],
)
@pytest.mark.slow
def test_reports_one_positive_line(args, label):
    (line,) = run_script(*args)
    assert line[0] == label and line[1] > 0 and line[2] > 0


@pytest.mark.slow
def test_profile_prints_lightnings_report():
    env = {**os.environ, "PYTHONWARNINGS": "ignore"}
    args = ["lightning", "one", "--profile", "--device", "cpu", "--nodes", "2000", "--epochs", "1"]
    result = subprocess.run(
        [sys.executable, str(SCRIPT), *args], capture_output=True, text=True, env=env
    )
    assert result.returncode == 0, result.stderr[-3000:]
    report = result.stdout + result.stderr
    assert "run_training_batch" in report and LINE.search(result.stdout)


@pytest.mark.slow
def test_cuda_without_a_gpu_is_a_clear_error():
    if torch.cuda.is_available():
        pytest.skip("a GPU is present")
    result = subprocess.run([sys.executable, str(SCRIPT), "raw"], capture_output=True, text=True)
    assert result.returncode == 2 and "pass --device cpu" in result.stderr
