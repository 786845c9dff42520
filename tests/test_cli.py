"""The command line as a Lightning/Hydra user meets it: checks before Hydra starts, g2m's own
help, output that reads well in a terminal and in a log, and what a run leaves behind."""

from __future__ import annotations

import csv
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import torch

import g2m
from g2m.cli import one_line_error
from g2m.errors import G2MError
from g2m.lit.fit import StageResult, report_stage
from g2m.run.preflight import preflight
from tests.conftest import tiny_overrides

CONFIGS = Path(g2m.__file__).parent / "configs"


def cli(*args: str, **env: str) -> subprocess.CompletedProcess:
    environ = {**os.environ, "PYTHONWARNINGS": "ignore", **env}
    environ.pop("G2M_DEBUG", None)
    return subprocess.run(
        [sys.executable, "-m", "g2m.train", *args], capture_output=True, text=True, env=environ
    )


def refused(result: subprocess.CompletedProcess, message: str, run_dir: Path) -> None:
    assert result.returncode == 2, result.stderr[-2000:]
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("g2m: error:"), result.stderr
    assert message in lines[0]
    assert not run_dir.exists(), "a refused command must write nothing, Hydra's files included"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["trainer.max_epochs=5"], "use teacher.max_epochs, student.max_epochs"),
        (["+trainer.max_epochs=5"], "use teacher.max_epochs, student.max_epochs"),
        (["+trainer.callbacks=[]"], "trainer.callbacks is set by each stage"),
        (["dataset.split=public"], "dataset.split has moved: splits are a group of their own"),
        (["dataset=pubmed"], "dataset=pubmed is not an option of the dataset group"),
        (["-m", "loss=glnn,vq2"], "loss=vq2 is not an option of the loss group"),
        (["seed=abc"], "seed='abc': expected an integer in [0, 2**32 - 1]"),
        (["student.model.norm=foo"], "student.model: norm must be one of"),
        (
            ["teacher=gat", "teacher.model.heads=0"],
            "teacher.model.heads=0: expected an integer >= 1",
        ),
        (["student.model.hidden_channels=1000000000"], "choose a smaller width"),
        (["loss=vq", "codebook.size=0"], "codebook.size=0: expected an integer >= 2"),
        (["trainer.devices=0"], "trainer.devices=0: expected an integer >= 1"),
        (["dataset=memory"], "dataset=file dataset.path=graph.pt"),
        (["threads=0"], "threads=0: expected an integer >= 1"),
    ],
)
def test_bad_command_lines_are_refused_before_hydra_starts(args, message):
    with pytest.raises(G2MError) as err:
        preflight(args)
    assert message in one_line_error(err.value)


@pytest.mark.parametrize(
    "args", [["seed=abc"], ["dataset=pubmed"], ["-m", "loss=glnn,vq2"], ["trainer.max_epochs=5"]]
)
def test_a_refused_command_line_is_one_line_exit_2_and_writes_nothing(args, tmp_path):
    run_dir = tmp_path / "run"
    result = cli(*args, f"hydra.run.dir={run_dir}", f"hydra.sweep.dir={run_dir}")
    refused(result, "", run_dir)


@pytest.mark.skipif(
    torch.cuda.is_available(), reason="checks the refusal on a machine without CUDA"
)
@pytest.mark.slow
def test_the_gpu_trainer_without_a_gpu_is_refused(tmp_path):
    result = cli("trainer=gpu", f"hydra.run.dir={tmp_path / 'run'}")
    refused(result, "trainer.accelerator=gpu but this machine has no CUDA device", tmp_path / "run")


def test_the_check_imports_neither_lightning_nor_pyg():
    probe = (
        "import sys\n"
        "from g2m.errors import G2MError\n"
        "from g2m.run.preflight import preflight\n"
        "try:\n    preflight(['seed=abc'])\nexcept G2MError:\n    pass\n"
        "print('lightning' in sys.modules, 'torch_geometric' in sys.modules)\n"
    )
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True).stdout
    assert out.split() == ["False", "False"]


@pytest.mark.slow
def test_trainer_keys_the_stages_do_not_own_reach_every_trainer(tmp_path, cache_dir):
    from g2m.run import pipeline
    from tests.conftest import compose_config

    cfg = compose_config(tiny_overrides(cache_dir, "+trainer.gradient_clip_val=0.5"))
    assert pipeline.run(cfg, tmp_path)["student"]["val_acc"] > 0


def test_help_is_g2ms_own_and_names_every_option():
    result = cli("--help")
    assert result.returncode == 0
    text = result.stdout
    assert text.startswith("g2m: GNN-to-MLP knowledge distillation")
    assert "tuned" not in text and "Powered by Hydra" not in text
    for group in ("dataset", "split", "teacher", "student", "loss", "setting", "trainer", "logger"):
        line = re.search(rf"^  {group} +(.+(?:\n {{12}}.+)*)", text, re.M).group(1)
        listed = set(re.findall(r"[a-z][a-z0-9-]*", line))
        missing = {p.stem for p in (CONFIGS / group).glob("*.yaml")} - listed
        assert not missing, (group, missing)


@pytest.mark.slow
def test_a_log_gets_a_few_plain_lines_and_the_summary(tmp_path, cache_dir):
    run_dir = tmp_path / "run"
    args = [a for a in tiny_overrides(cache_dir) if a != "trainer.enable_progress_bar=false"]
    result = cli(
        *args, "teacher.max_epochs=40", "student.max_epochs=40", f"hydra.run.dir={run_dir}"
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert "\r" not in result.stderr and "\r" not in result.stdout  # no bars off a terminal
    progress = [line for line in result.stdout.splitlines() if ": epoch " in line]
    assert 2 <= len(progress) <= 2 * 10  # about ten lines a stage, not one per redraw
    log = (run_dir / "train.log").read_text()
    assert "teacher: selected epoch" in log and "student: selected epoch" in log
    assert "g2m | synthetic (cpf) | transductive | seed 0" in log  # the summary table
    assert "wandb:" not in result.stdout + result.stderr


@pytest.mark.slow
def test_each_stage_logs_to_its_own_table_and_keeps_only_its_best_checkpoint(tmp_path, cache_dir):
    from g2m.run import pipeline
    from tests.conftest import compose_config

    pipeline.run(compose_config(tiny_overrides(cache_dir, "logger=csv")), tmp_path)
    for stage in ("teacher", "student"):
        with open(tmp_path / "logs" / stage / "metrics.csv") as handle:
            rows = list(csv.DictReader(handle))
        assert rows and all(
            not k.startswith("student" if stage == "teacher" else "teacher/") for k in rows[0]
        )
        assert any(row.get(f"{stage}/selected/val_acc") for row in rows)
        assert sorted(p.name for p in (tmp_path / "checkpoints" / stage).iterdir()) == ["best.ckpt"]


def test_the_selected_values_replace_the_last_epochs_in_a_wandb_summary():
    class Experiment:
        summary: dict = {}

    class FakeWandb:
        experiment = Experiment()

    result = StageResult(0.8, 7, {"acc": 0.75}, Path("best.ckpt"), 20, 1.0)
    report_stage("student", result, 100, FakeWandb())
    assert Experiment.summary == {
        "student/val/acc": 0.8,
        "student/best_epoch": 7,
        "student/test/acc": 0.75,
    }


@pytest.mark.slow
def test_a_joblib_sweep_shares_the_cores_between_its_jobs(tmp_path, cache_dir):
    sweep = tmp_path / "sweep"
    args = tiny_overrides(cache_dir, "seed=0,1")
    result = cli(
        "-m", *args, "hydra/launcher=joblib", "hydra.launcher.n_jobs=2", f"hydra.sweep.dir={sweep}"
    )
    assert result.returncode == 0, result.stderr[-2000:]
    timings = [json.loads(p.read_text()) for p in sweep.rglob("timings.json")]
    assert len(timings) == 2
    assert {t["threads"] for t in timings} == {max(1, (os.cpu_count() or 1) // 2)}


@pytest.mark.slow
def test_predict_names_what_a_foreign_file_is_not(tmp_path):
    onnx = tmp_path / "student.onnx"
    onnx.write_bytes(b"\x08\x07not a torch file")
    features = tmp_path / "x.npy"
    import numpy as np

    np.save(features, np.zeros((2, 3), np.float32))
    result = subprocess.run(
        [sys.executable, "-m", "g2m.serve.predict", str(onnx), str(features)],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "is not a readable g2m student artifact" in lines[0]
    assert "ONNX and TorchScript exports are for other runtimes" in lines[0]
    assert "weights_only" not in result.stderr
