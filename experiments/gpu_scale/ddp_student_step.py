"""Where the student stage's step time goes under DDP (a benchmark, not a test).

The student's training step (GLNN's products MLP: 3 layers, 256 wide, batch norm, dropout
0.5; batches of 4096 nodes; KL to stored teacher logits; Adam; bf16 autocast on GPU) is
timed over random data of ogbn-products' size, in two ways:

- ``raw``: a plain PyTorch loop, with ``DistributedDataParallel`` when started by
  ``torchrun`` with several processes; the cost of the step itself and of DDP, without
  Lightning.
- ``lightning VARIANT``: g2m's ``StudentSystem`` under a Lightning ``Trainer``, the way the
  student stage runs it. ``one``: one device. ``ddp-lightning``: two devices, Lightning's
  default ``DDPStrategy``. ``ddp-nobuf``: no buffer broadcast in every forward.
  ``ddp-g2m``: g2m's ``trainer.ddp`` defaults (also a static graph and gradients as bucket
  views; see ``g2m/lit/distributed.py``).

Each prints its epochs' seconds and nodes per second (median over the epochs after the
first). ``--profile`` attaches Lightning's ``SimpleProfiler`` (its report goes to stdout);
it adds host time to every step, so compare throughputs only between runs that both have it
or both lack it. On GPU the step is host-bound: DDP's per-step bookkeeping, not the all-reduce of
~0.1M parameters, decides how far two devices are from twice one.

    python experiments/gpu_scale/ddp_student_step.py raw
    torchrun --standalone --nproc_per_node=2 experiments/gpu_scale/ddp_student_step.py raw
    python experiments/gpu_scale/ddp_student_step.py lightning one
    python experiments/gpu_scale/ddp_student_step.py lightning ddp-g2m
    python experiments/gpu_scale/ddp_student_step.py lightning one --profile
    python experiments/gpu_scale/ddp_student_step.py lightning one --device cpu \
        --nodes 4000 --epochs 2
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

import torch
import torch.nn.functional as F

FEATURES, CLASSES, BATCH = 100, 47, 4096
VARIANTS = {
    "one": None,
    "ddp-lightning": {},
    "ddp-nobuf": {"broadcast_buffers": False},
    "ddp-g2m": {"broadcast_buffers": False, "gradient_as_bucket_view": True, "static_graph": True},
}


def random_data(num_nodes: int, device: torch.device):
    """Features, labels and teacher logits (values do not change the step's cost)."""
    generator = torch.Generator(device=device).manual_seed(0)
    x = torch.randn(num_nodes, FEATURES, device=device, generator=generator)
    y = torch.randint(0, CLASSES, (num_nodes,), device=device, generator=generator)
    teacher_logits = torch.randn(num_nodes, CLASSES, device=device, generator=generator)
    return x, y, teacher_logits


def products_student() -> torch.nn.Module:
    from g2m.models.student import MLPStudent

    return MLPStudent(FEATURES, 256, CLASSES, num_layers=3, dropout=0.5, norm="batch")


def report(label: str, seconds: list[float], nodes: int, steps: int) -> None:
    timed = seconds[1:] or seconds
    median = statistics.median(timed)
    print(
        f"{label}: epochs {[round(s, 3) for s in seconds]} s; median {median:.3f} s, "
        f"{median / steps * 1e3:.2f} ms/step, {nodes / median / 1e6:.3f} M nodes/s",
        flush=True,
    )


def raw_loop(num_nodes: int, epochs: int, device_type: str) -> None:
    import torch.distributed as dist

    world, rank = int(os.environ.get("WORLD_SIZE", 1)), int(os.environ.get("RANK", 0))
    if world > 1:
        dist.init_process_group("nccl" if device_type == "cuda" else "gloo")
    device = torch.device(device_type, rank) if device_type == "cuda" else torch.device("cpu")
    if device.type == "cuda":
        torch.cuda.set_device(device)
    x, _, teacher_logits = random_data(num_nodes, device)
    model = products_student().to(device)
    if world > 1:
        ids = [rank] if device.type == "cuda" else None
        model = torch.nn.parallel.DistributedDataParallel(model, device_ids=ids)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    steps = -(-num_nodes // BATCH) // world
    seconds = []
    for _ in range(epochs):
        order = torch.randperm(num_nodes, device=device)
        sync(device)
        start = time.perf_counter()
        for step in range(steps):
            first = (step * world + rank) * BATCH
            idx = order[first : first + BATCH]
            with torch.autocast(device.type, dtype=torch.bfloat16, enabled=device.type == "cuda"):
                out = model(x[idx])
            target = teacher_logits[idx].log_softmax(-1)
            loss = F.kl_div(
                out.float().log_softmax(-1), target, log_target=True, reduction="batchmean"
            )
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
        sync(device)
        seconds.append(time.perf_counter() - start)
    if rank == 0:
        report(f"raw, {world} process(es)", seconds, steps * world * BATCH, steps)
    if world > 1:
        dist.destroy_process_group()


def lightning_loop(
    variant: str, num_nodes: int, epochs: int, device_type: str, profile: bool
) -> None:
    import lightning.pytorch as pl
    from lightning.pytorch.profilers import SimpleProfiler
    from lightning.pytorch.strategies import DDPStrategy

    from g2m.data.splits import NodeSplit
    from g2m.lit.student import StudentSystem
    from g2m.lit.throughput import TrainThroughput
    from g2m.losses.glnn import SoftLogitDistillation

    local_rank = int(os.environ.get("LOCAL_RANK", 0))
    device = torch.device("cpu")
    if device_type == "cuda":
        torch.cuda.set_device(local_rank)
        device = torch.device("cuda", local_rank)
    x, y, teacher_logits = random_data(num_nodes, device)
    labelled, val = num_nodes // 2600, num_nodes // 1000  # the CPF shares of products
    split = NodeSplit(
        torch.arange(labelled),
        torch.arange(labelled, labelled + val),
        torch.arange(labelled + val, num_nodes),
        torch.arange(0),
        num_nodes,
    )
    system = StudentSystem(
        products_student(), SoftLogitDistillation(), x, y, teacher_logits, None, split,
        lr=1e-3, weight_decay=0.0, batch_size=BATCH,
    )  # fmt: skip
    accelerator = "gpu" if device_type == "cuda" else "cpu"
    kwargs = {"accelerator": accelerator, "devices": 1}
    kwargs["precision"] = "bf16-mixed" if device_type == "cuda" else "32-true"
    if VARIANTS[variant] is not None:
        kwargs |= {"devices": 2, "strategy": DDPStrategy(**VARIANTS[variant])}
    throughput = TrainThroughput()
    trainer = pl.Trainer(
        max_epochs=epochs,
        callbacks=[throughput],
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        num_sanity_val_steps=0,
        use_distributed_sampler=False,
        profiler=SimpleProfiler() if profile else None,
        **kwargs,
    )
    trainer.fit(system)
    if trainer.global_rank == 0:
        steps = len(system.train_dataloader())
        report(f"lightning {variant}", throughput.epoch_seconds, split.observed.numel(), steps)


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("mode", choices=["raw", "lightning"])
    parser.add_argument("variant", nargs="?", default="one", choices=list(VARIANTS))
    parser.add_argument("--nodes", type=int, default=2_449_029)
    parser.add_argument("--epochs", type=int, default=4)
    parser.add_argument("--device", choices=["cuda", "cpu"], default="cuda")
    parser.add_argument("--profile", action="store_true", help="Lightning's SimpleProfiler")
    args = parser.parse_args()
    if args.device == "cuda" and not torch.cuda.is_available():
        parser.error("no CUDA device here: pass --device cpu (with a small --nodes)")
    if args.mode == "raw":
        raw_loop(args.nodes, args.epochs, args.device)
    else:
        lightning_loop(args.variant, args.nodes, args.epochs, args.device, args.profile)


if __name__ == "__main__":
    main()
