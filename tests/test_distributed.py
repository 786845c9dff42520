"""Multi-device runs: batch sharding, the single-device full-graph stages, DDP on CPU."""

from __future__ import annotations

import json
import os
import queue
import subprocess
import sys

import pytest
import torch
from lightning.pytorch.strategies import DDPStrategy

from g2m.lit.distributed import (
    SyncBuffersBeforeEvaluation,
    device_count,
    single_device,
    student_trainer_kwargs,
)
from g2m.lit.loaders import NodeBatches
from tests.conftest import tiny_overrides


def batches(nodes, batch_size, seed, rank=0, world_size=1, epochs=1):
    loader = NodeBatches(nodes, batch_size, torch.Generator().manual_seed(seed), rank, world_size)
    return [[b.tolist() for b in loader] for _ in range(epochs)], len(loader)


def test_one_rank_sees_every_node_once_per_epoch():
    nodes = torch.arange(100, 203)
    (epoch,), length = batches(nodes, 10, seed=0)
    assert length == len(epoch) == 11
    assert sorted(sum(epoch, [])) == nodes.tolist()


def test_epochs_are_reshuffled_and_reproducible():
    nodes = torch.arange(50)
    first, _ = batches(nodes, 8, seed=3, epochs=2)
    again, _ = batches(nodes, 8, seed=3, epochs=2)
    assert first == again and first[0] != first[1]


@pytest.mark.parametrize("world_size", [2, 3])
def test_ranks_share_one_permutation_with_equal_step_counts(world_size):
    nodes = torch.arange(103)
    shards = [batches(nodes, 10, seed=1, rank=r, world_size=world_size) for r in range(world_size)]
    lengths = {length for _, length in shards}
    assert lengths == {-(-11 // world_size)}  # 11 batches over the ranks, rounded up
    seen = sum((sum(epoch, []) for (epoch,), _ in shards), [])
    assert set(seen) == set(nodes.tolist())  # every node on some rank
    (single,), _ = batches(nodes, 10, seed=1)
    assert shards[0][0][0][0] == single[0]  # rank 0 starts where one device would


def test_full_graph_stages_get_one_device():
    assert single_device({"devices": 4, "strategy": "ddp", "precision": "bf16-mixed"}) == {
        "devices": 1,
        "precision": "bf16-mixed",
    }
    assert single_device({"devices": [2, 3]})["devices"] == [2]
    assert [device_count({"devices": d}) for d in (3, [0, 1], "auto")] == [3, 2, 1]
    assert "ddp" not in single_device({"devices": 2, "ddp": {"static_graph": True}})


DDP_OPTIONS = {"static_graph": True, "gradient_as_bucket_view": True, "broadcast_buffers": False}


def test_student_stage_gets_a_ddp_strategy_with_the_configured_options():
    kwargs = student_trainer_kwargs({"devices": 2, "precision": "bf16-mixed", "ddp": DDP_OPTIONS})
    strategy = kwargs["strategy"]
    assert isinstance(strategy, DDPStrategy) and "ddp" not in kwargs
    assert strategy._ddp_kwargs == DDP_OPTIONS
    assert kwargs["precision"] == "bf16-mixed"


def test_one_device_or_an_explicit_strategy_is_left_alone():
    assert student_trainer_kwargs({"devices": 1, "ddp": DDP_OPTIONS}) == {"devices": 1}
    chosen = {"devices": 2, "strategy": "ddp_spawn", "ddp": DDP_OPTIONS}
    assert student_trainer_kwargs(chosen) == {"devices": 2, "strategy": "ddp_spawn"}


class _World:
    """The two attributes of a Trainer that the callback reads."""

    def __init__(self, world_size):
        self.world_size = world_size


def _sync_on_rank(rank: int, init_file: str, results) -> None:
    torch.distributed.init_process_group(
        "gloo", init_method=f"file://{init_file}", rank=rank, world_size=2
    )
    module = torch.nn.BatchNorm1d(3)
    module.train()
    module(torch.randn(8, 3) * (rank + 1) + 10 * rank)  # ranks' statistics now differ
    SyncBuffersBeforeEvaluation().on_validation_start(_World(2), module)
    results.put((rank, [b.tolist() for b in module.buffers()]))
    torch.distributed.destroy_process_group()


@pytest.mark.slow
def test_buffers_are_rank_zeros_on_every_rank_before_evaluation(tmp_path):
    context = torch.multiprocessing.get_context("spawn")
    results = context.Queue()
    init_file = str(tmp_path / "rendezvous")
    procs = [context.Process(target=_sync_on_rank, args=(r, init_file, results)) for r in (0, 1)]
    for proc in procs:
        proc.start()
    got = {}
    while len(got) < len(procs):  # as long as it takes, while a rank is still alive
        try:
            rank, value = results.get(timeout=1)
            got[rank] = value
        except queue.Empty:
            assert any(p.is_alive() for p in procs), "a rank died before reporting"
    for proc in procs:
        proc.join()
        assert proc.exitcode == 0
    assert got[0] == got[1]
    assert got[0][0] != [0.0, 0.0, 0.0]  # statistics were updated, then shared


def test_buffer_sync_is_a_no_op_on_one_device():
    module = torch.nn.BatchNorm1d(2)
    before = [b.clone() for b in module.buffers()]
    SyncBuffersBeforeEvaluation().on_validation_start(_World(1), module)
    assert all(torch.equal(a, b) for a, b in zip(before, module.buffers(), strict=True))


def run_cli(*overrides: str, multirun: bool = False) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONWARNINGS": "ignore"}
    args = [sys.executable, "-m", "g2m.train", *(["-m"] if multirun else []), *overrides]
    return subprocess.run(args, capture_output=True, text=True, env=env)


@pytest.mark.slow
def test_student_stage_runs_data_parallel_on_two_cpu_processes(tmp_path, cache_dir):
    run_dir = tmp_path / "run"
    result = run_cli(
        *tiny_overrides(cache_dir, "trainer.devices=2", "student.batch_size=32"),
        f"hydra.run.dir={run_dir}",
    )
    assert result.returncode == 0, result.stderr[-3000:]
    metrics = json.loads((run_dir / "metrics.json").read_text())
    timings = json.loads((run_dir / "timings.json").read_text())
    assert timings["student_devices"] == 2 and timings["student_nodes_per_s"] > 0
    assert metrics["teacher"]["test_acc"] > 0.6 and metrics["student"]["test_acc"] > 0.5
    # the teacher ran once, on one process; rank 1 wrote nothing of its own
    assert result.stdout.count("g2m | synthetic") == 1
    assert not list(run_dir.glob("**/*.tmp"))
    assert sorted(p.name for p in (run_dir / "checkpoints").iterdir()) == ["student", "teacher"]


@pytest.mark.slow
def test_multi_device_sweeps_are_refused(tmp_path, cache_dir):
    result = run_cli(
        *tiny_overrides(cache_dir, "trainer.devices=2", "seed=0,1"),
        f"hydra.sweep.dir={tmp_path / 'sweep'}",
        multirun=True,
    )
    assert result.returncode == 2
    assert "g2m: error: trainer.devices=2 cannot be combined with -m" in result.stderr
    assert not list(tmp_path.glob("sweep/*/metrics.json"))


@pytest.mark.gpu
@pytest.mark.skipif(torch.cuda.device_count() < 2, reason="needs two CUDA devices")
def test_student_stage_on_two_gpus(tmp_path, cache_dir):
    run_dir = tmp_path / "run"
    overrides = [o for o in tiny_overrides(cache_dir) if o != "trainer.accelerator=cpu"]
    result = run_cli(*overrides, "trainer=gpu", "trainer.devices=2", f"hydra.run.dir={run_dir}")
    assert result.returncode == 0, result.stderr[-3000:]
    assert json.loads((run_dir / "timings.json").read_text())["student_devices"] == 2
