"""The fused student's time three ways: one call, back-to-back calls, and the host's share (GPU).

``python -m g2m.bench`` times one call at a time between CUDA events, so its figure counts
the host's work per call (Python, argument checks, Triton's launcher) whenever the GPU waits
for it. This prints, for each configuration of the weights-resident kernel and for
:class:`g2m.serve.inference.StudentInference` with and without ``cuda_graph=True``:

- ``median``: events around one call, median of 20 (the bench's method);
- ``stream``: events around 20 back-to-back calls, divided by 20 (the GPU's own time: the host
  runs ahead while the queue is busy);
- ``host``: wall time to *issue* one call with the GPU idle (median of 20).

The student is GLNN's ogbn-products one (100 features, 3 x 256, batch norm, 47 classes),
over 2,449,029 rows by default. Needs a Hopper GPU (the resident kernel).
experiments/gpu_scale/README.md, section 7.

    python experiments/gpu_scale/launch_overhead.py --nodes 2449029
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable

import torch

from g2m.bench.timing import median_ms
from g2m.models.student import MLPStudent
from g2m.serve.fused_mlp import PackedMLP
from g2m.serve.inference import StudentInference

PRODUCTS_STUDENT = (100, 256, 47)  # features, hidden width, classes (3 layers, batch norm)


def stream_ms(fn: Callable[[], object], calls: int = 20) -> float:
    fn()
    torch.cuda.synchronize()
    start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    start.record()
    for _ in range(calls):
        fn()
    end.record()
    end.synchronize()
    return start.elapsed_time(end) / calls


def host_ms(fn: Callable[[], object], calls: int = 20) -> float:
    times = []
    for _ in range(calls):
        torch.cuda.synchronize()
        begin = time.perf_counter()
        fn()
        times.append((time.perf_counter() - begin) * 1e3)
    torch.cuda.synchronize()
    return statistics.median(times)


def report(label: str, fn: Callable[[], torch.Tensor], reference: torch.Tensor) -> None:
    out = fn().float()
    error = float((out - reference).norm() / reference.norm())
    print(
        f"{label:<62} median {median_ms(fn, 'cuda', 20, 3):6.3f}  stream {stream_ms(fn):6.3f}"
        f"  host {host_ms(fn):6.3f}  rel err {error:.1e}",
        flush=True,
    )


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--nodes", type=int, default=2_449_029, help="rows (ogbn-products: 2,449,029)")
    args = p.parse_args()
    args.features, args.hidden, args.classes = PRODUCTS_STUDENT
    if not torch.cuda.is_available():
        raise SystemExit("this script times a GPU kernel and needs a CUDA device")
    from g2m.serve import fused_mlp_gluon

    torch.manual_seed(0)
    student = MLPStudent(args.features, args.hidden, args.classes, 3, norm="batch").cuda().eval()
    packed = PackedMLP.from_student(student, torch.bfloat16)
    if not fused_mlp_gluon.supported(packed, torch.device("cuda")):
        raise SystemExit("the resident kernel needs a Hopper GPU (compute capability 9.x)")
    x32 = torch.randn(args.nodes, args.features, device="cuda")
    with torch.no_grad():
        reference = student(x32)
    out = torch.empty(args.nodes, args.classes, device="cuda")
    print(torch.cuda.get_device_name(), f"{args.nodes:,} rows; times in ms")
    for name, x in (("bf16", x32.to(torch.bfloat16)), ("fp32", x32)):
        for cfg in fused_mlp_gluon.CONFIGS:
            label = f"{name} resident_mlp {cfg}"
            report(
                label,
                lambda cfg=cfg, x=x: fused_mlp_gluon.resident_mlp(packed, x, out, cfg),
                reference,
            )
        for graph in (False, True):
            engine = StudentInference(student, "cuda", "fused", torch.bfloat16, cuda_graph=graph)
            engine(x)  # warm-up (compiles, autotunes); with graphs the next call captures
            report(
                f"{name} StudentInference cuda_graph={graph}", lambda e=engine, x=x: e(x), reference
            )


if __name__ == "__main__":
    main()
