"""Time every tile configuration of the fused student kernels on one shape (GPU only).

The autotuners (``g2m.serve.fused_mlp_triton``, ``g2m.serve.fused_mlp_gluon``) keep only the winner;
this prints them all, for the three kernels (``tma``: weights through tensor descriptors,
Hopper and newer; ``pointer``; ``resident``: weights kept in shared memory, Hopper, 3-layer
students), with each one's error against the fp32 student, so a change to a kernel or to a
list can be judged. Default shape: GLNN's ogbn-products student (3 x 256, batch norm) over
2,449,029 nodes with 100 features and 47 classes.

    python experiments/gpu_scale/fused_mlp_configs.py --nodes 2449029 --features 100 --classes 47
"""

from __future__ import annotations

import argparse

import torch

from g2m.bench.timing import copy_bandwidth, matmul_rate, median_ms
from g2m.models.student import MLPStudent
from g2m.serve.fused_mlp import PackedMLP
from g2m.serve.fused_mlp_triton import GPU_CONFIGS, TMA_CONFIGS, fused_mlp


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--nodes", type=int, default=2_449_029)
    p.add_argument("--features", type=int, default=100)
    p.add_argument("--classes", type=int, default=47)
    p.add_argument("--hidden", type=int, default=256)
    p.add_argument("--layers", type=int, default=3)
    p.add_argument("--repeats", type=int, default=20)
    p.add_argument("--inputs", default="fp32,bf16", help="feature dtypes to time (fp32,bf16)")
    p.add_argument(
        "--kernels", default="pointer,tma,resident", help="kernels to time (pointer,tma,resident)"
    )
    args = p.parse_args()
    torch.manual_seed(0)
    copy = copy_bandwidth("cuda", 2**31)
    rate = matmul_rate("cuda", 8192, torch.bfloat16)
    name = torch.cuda.get_device_name()
    print(f"{name}: copy {copy / 1e9:,.0f} GB/s, bf16 matmul {rate / 1e12:.1f} TFLOP/s")
    student = MLPStudent(args.features, args.hidden, args.classes, args.layers, norm="batch")
    student = student.cuda().eval()
    packed = PackedMLP.from_student(student, torch.bfloat16)
    x32 = torch.randn(args.nodes, args.features, device="cuda")
    x16 = x32.to(torch.bfloat16)
    with torch.no_grad():
        reference = student(x32)
    out = torch.empty(args.nodes, args.classes, device="cuda")
    inputs = {"fp32": x32, "bf16": x16}
    candidates = []
    for kernel, table in (("pointer", GPU_CONFIGS), ("tma", TMA_CONFIGS)):
        if kernel not in args.kernels:
            continue
        for bm, bk, bh, warps, stages, pipelined in table:
            config = dict(BLOCK_M=bm, BLOCK_K=bk, BLOCK_H=bh, PIPELINED=pipelined)
            candidates.append((kernel, config | dict(num_warps=warps, num_stages=stages)))
    if "resident" in args.kernels:
        from g2m.serve.fused_mlp_gluon import CONFIGS

        candidates += [("resident", config) for config in CONFIGS]
    rows = []
    for kernel, config in candidates:
        if config.get("BLOCK_H", 0) > packed.hidden:
            continue
        for name in args.inputs.split(","):
            x = inputs[name]
            try:
                out.fill_(float("nan"))
                fused_mlp(packed, x, out, config, kernel)
                torch.cuda.synchronize()
                error = float((out - reference).norm() / reference.norm())
                ms = median_ms(
                    lambda x=x, c=config, k=kernel: fused_mlp(packed, x, out, c, k),
                    "cuda",
                    repeats=args.repeats,
                    warmup=2,
                )
            except Exception as err:  # a config that does not compile is reported
                rows.append((float("inf"), kernel, name, config, f"{type(err).__name__}"))
                continue
            rows.append((ms, kernel, name, config, f"{error:.1e}"))
    print(f"{'ms':>8}  {'kernel':<8} {'x':<5} {'rel err':>8}  config")
    for ms, kernel, name, config, note in sorted(rows, key=lambda r: r[0]):
        print(f"{ms:>8.3f}  {kernel:<8} {name:<5} {note:>8}  {config}")


if __name__ == "__main__":
    main()
