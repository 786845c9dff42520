"""Time every tile configuration of the fused student kernel on one shape (GPU only).

The autotuner (``g2m.fused_mlp_triton``) keeps only the winner; this prints them all, with
each one's error against the fp32 student, so a change to the kernel or to the list can be
judged. Default shape: GLNN's ogbn-products student (3 x 256, batch norm) over 2,449,029
nodes with 100 features and 47 classes.

    python scripts/fused_mlp_configs.py --nodes 2449029 --features 100 --classes 47
"""

from __future__ import annotations

import argparse

import torch

from g2m.fused_mlp import PackedMLP
from g2m.fused_mlp_triton import GPU_CONFIGS, fused_mlp
from g2m.models.student import MLPStudent
from g2m.timing import median_ms


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--nodes", type=int, default=2_449_029)
    p.add_argument("--features", type=int, default=100)
    p.add_argument("--classes", type=int, default=47)
    p.add_argument("--hidden", type=int, default=256)
    p.add_argument("--layers", type=int, default=3)
    p.add_argument("--repeats", type=int, default=20)
    args = p.parse_args()
    torch.manual_seed(0)
    student = MLPStudent(args.features, args.hidden, args.classes, args.layers, norm="batch")
    student = student.cuda().eval()
    packed = PackedMLP.from_student(student, torch.bfloat16)
    x32 = torch.randn(args.nodes, args.features, device="cuda")
    x16 = x32.to(torch.bfloat16)
    with torch.no_grad():
        reference = student(x32)
    out = torch.empty(args.nodes, args.classes, device="cuda")
    rows = []
    for bm, bk, bh, warps, stages, pipelined in GPU_CONFIGS:
        if bh > packed.hidden:
            continue
        config = dict(BLOCK_M=bm, BLOCK_K=bk, BLOCK_H=bh, PIPELINED=pipelined)
        config |= dict(num_warps=warps, num_stages=stages)
        for name, x in (("fp32", x32), ("bf16", x16)):
            try:
                out.fill_(float("nan"))
                fused_mlp(packed, x, out=out, config=config)
                error = float((out - reference).norm() / reference.norm())
                ms = median_ms(
                    lambda x=x, c=config: fused_mlp(packed, x, out, c),
                    "cuda",
                    repeats=args.repeats,
                    warmup=2,
                )
            except Exception as err:  # a config that does not compile is reported
                rows.append((float("inf"), name, config, f"{type(err).__name__}"))
                continue
            rows.append((ms, name, config, f"{error:.1e}"))
    print(f"{'ms':>8}  {'x':<5} {'rel err':>8}  config")
    for ms, name, config, note in sorted(rows, key=lambda r: r[0]):
        print(f"{ms:>8.3f}  {name:<5} {note:>8}  {config}")


if __name__ == "__main__":
    main()
