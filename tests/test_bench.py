"""``python -m g2m.bench``: the small CPU mode end to end, and its argument errors."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
import torch

from g2m.bench import bench
from g2m.errors import ConfigError

SMALL = ["--preset", "small", "--nodes", "3000", "--degree", "6", "--repeats", "2"]


@pytest.mark.slow
def test_small_cpu_bench_writes_a_complete_report(tmp_path, capsys):
    out = tmp_path / "bench.json"
    result = bench.main(["--device", "cpu", *SMALL, "--fanout", "5,3,2", "--out", str(out)])
    assert json.loads(out.read_text()) == json.loads(json.dumps(result))
    assert result["graph"]["nodes"] == 3000
    variants = {row["variant"]: row for row in result["student"]["variants"]}
    assert set(variants) == {"eager-fp32", "eager-bf16"}
    assert variants["eager-fp32"]["rel_error"] == 0.0
    assert variants["eager-bf16"]["argmax_agreement"] > 0.9
    for row in variants.values():
        assert row["ms"] > 0 and row["floor_ms"] > 0
        assert row["over_floor"] == pytest.approx(row["ms"] / row["floor_ms"])
        assert row["nodes_per_s"] == pytest.approx(3000 / row["ms"] * 1e3)
    assert result["teacher"]["ms"] > 0
    fastest = min(row["ms"] for row in variants.values())
    assert result["teacher_over_fastest_student"] == pytest.approx(
        result["teacher"]["ms"] / fastest
    )
    assert set(result["latency"]) == {"fanouts", "cpu"}
    printed = capsys.readouterr().out
    assert "eager-bf16" in printed and "teacher / fastest student" in printed


def test_a_failing_backend_is_reported_not_fatal(monkeypatch):
    real = bench.make_engine

    def broken(student, device, name):
        if name == "eager-bf16":
            raise RuntimeError("no such kernel")
        return real(student, device, name)

    monkeypatch.setattr(bench, "make_engine", broken)
    x = torch.randn(64, 100)
    ceilings = bench.Ceilings(1e10, {"fp32": 1e11, "bf16": 1e11})
    from g2m.models.student import MLPStudent

    rows = bench.time_students(MLPStudent(100, 16, 5), x, ceilings, ["eager-fp32", "eager-bf16"], 1)
    assert rows[0]["variant"] == "eager-fp32" and rows[0]["ms"] > 0
    assert rows[1] == {"variant": "eager-bf16", "error": "RuntimeError: no such kernel"}


def test_student_cost_counts_every_layer_once():
    from g2m.models.student import MLPStudent

    student = MLPStudent(100, 256, 47, num_layers=3)
    nbytes, flops = bench.student_cost(student.init_args, 10, x_bytes=4, out_bytes=2)
    assert flops == 2 * 10 * (100 * 256 + 256 * 256 + 256 * 47)
    assert nbytes == 10 * (100 * 4 + 47 * 2)


@pytest.mark.parametrize("fanout", ["5,5", "a,b,c", "0,1,1"])
def test_bad_fanout_is_refused(fanout):
    with pytest.raises(ConfigError, match="--fanout"):
        bench.parse_args(["--device", "cpu", "--fanout", fanout])


@pytest.mark.slow
def test_cli_reports_bad_input_in_one_line(tmp_path):
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "g2m.bench",
            "--device",
            "cpu",
            "--fanout",
            "1",
            "--out",
            str(tmp_path / "b.json"),
        ],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 2
    assert result.stderr.strip().startswith("g2m.bench: error: --fanout")
    assert not (tmp_path / "b.json").exists()


def test_student_of_another_width_is_refused(tmp_path):
    from g2m.models.student import MLPStudent
    from g2m.serve.artifact import save_student

    path = save_student(MLPStudent(7, 8, 3), tmp_path / "student.pt", provenance={})
    args = bench.parse_args(["--device", "cpu", *SMALL, "--student", str(path)])
    with pytest.raises(ConfigError, match="--features 7"):
        bench.build_student(args, num_features=100, num_classes=47)


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_small_gpu_bench_has_every_backend(tmp_path):
    result = bench.main(["--device", "cuda", *SMALL, "--out", str(tmp_path / "b.json")])
    variants = {row["variant"]: row for row in result["student"]["variants"]}
    assert {"eager-fp32", "eager-bf16", "compile-bf16"} <= set(variants)
    for row in variants.values():
        assert row["argmax_agreement"] > 0.95, row
    assert set(result["latency"]) == {"fanouts", "cuda", "cpu"}
