"""``python -m g2m.bench``: student inference against the hardware floor, and against the teacher.

A benchmark, not a test: it prints a table and writes JSON. In one process it

1. measures the device's ceilings (:mod:`g2m.bench.timing`: copy bandwidth, matrix rate);
2. draws a CSBM graph (:mod:`g2m.data.synthetic`; ogbn-products' size by default:
   2,449,029 nodes, 61.9M undirected edges, 100 features, 47 classes; homophily 0.7, signal
   1: timings depend on the sizes, not on these) on the device;
3. times the student MLP over *every* node with each inference back-end
   (:mod:`g2m.serve.inference`) and compares it with its floor
   :math:`\\max(\\text{bytes}/\\text{bandwidth},\\ \\text{FLOP}/\\text{rate})`, where bytes
   = features read once + logits written once and FLOP = :math:`2N\\sum_l d_{l-1} d_l`;
4. times the teacher GNN's full-graph inference (fp32, sparse CSR aggregation) on the
   same graph, and the ratio teacher / fastest student;
5. runs GLNN's latency protocol (10 random nodes; the teacher fetches their L-hop
   neighbourhoods, :mod:`g2m.bench.latency`) on the device and on the CPU.

The weights are random unless ``--student`` names a trained ``student.pt``: speed does not
depend on their values. ``--preset small`` is a CPU-sized run (the tests use it).
"""

from __future__ import annotations

import argparse
import copy
import platform
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from g2m.bench.timing import copy_bandwidth, matmul_rate, median_ms
from g2m.cli import run_tool
from g2m.errors import ConfigError

__all__ = ["main", "run"]

PRESETS = {
    # ogbn-products: 2,449,029 nodes, 61,859,140 undirected edges, 100 features, 47 classes
    "products": dict(nodes=2_449_029, degree=50.52, features=100, classes=47),
    "small": dict(nodes=20_000, degree=10.0, features=100, classes=47),
}


@dataclass
class Ceilings:
    bandwidth: float  # bytes/s, read + write
    rates: dict[str, float]  # FLOP/s of a large matrix product, per operand dtype

    def floor_ms(self, nbytes: float, flops: float, dtype: str) -> tuple[float, str]:
        memory, compute = nbytes / self.bandwidth * 1e3, flops / self.rates[dtype] * 1e3
        return (compute, "compute") if compute >= memory else (memory, "memory")


def measure_ceilings(device: torch.device) -> Ceilings:
    """Copy bandwidth and matrix rates (fp32 and bf16) on ``device``, measured now."""
    cuda = device.type == "cuda"
    nbytes, size, repeats = (2 << 30, 8192, 10) if cuda else (256 << 20, 1024, 5)
    rates = {
        name: matmul_rate(device, size, dtype, repeats)
        for name, dtype in (("fp32", torch.float32), ("bf16", torch.bfloat16))
    }
    return Ceilings(copy_bandwidth(device, nbytes, repeats), rates)


def build_graph(args: argparse.Namespace, device: torch.device):
    from g2m.data.synthetic import make_csbm

    begin = time.perf_counter()
    graph = make_csbm(
        num_nodes=args.nodes,
        num_classes=args.classes,
        num_features=args.features,
        avg_degree=args.degree,
        homophily=0.7,
        feature_signal=1.0,
        seed=0,
        device=device,
    )
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    return graph, time.perf_counter() - begin


def build_student(args: argparse.Namespace, num_features: int, num_classes: int):
    from g2m.models.student import MLPStudent
    from g2m.serve.artifact import load_student

    if args.student:
        student, _ = load_student(Path(args.student))
        if student.init_args["in_channels"] != num_features:
            raise ConfigError(
                f"--student expects {student.init_args['in_channels']} features but the bench "
                f"graph has {num_features}; pass --features {student.init_args['in_channels']}."
            )
        return student
    return MLPStudent(num_features, args.hidden, num_classes, num_layers=args.layers).eval()


def student_cost(args: dict, num_nodes: int, x_bytes: int, out_bytes: int) -> tuple[float, float]:
    """(bytes, FLOP) of one pass over every node: features in and logits out once.

    ``args`` are the student's constructor arguments (``MLPStudent.init_args``).
    """
    f, h, c = args["in_channels"], args["hidden_channels"], args["out_channels"]
    widths = [f] + [h] * (args["num_layers"] - 1) + [c]
    flops = 2 * num_nodes * sum(i * o for i, o in zip(widths[:-1], widths[1:], strict=False))
    nbytes = num_nodes * (f * x_bytes + c * out_bytes)
    return nbytes, flops


def make_engine(student, device: torch.device, name: str):
    """The inference object for ``backend-dtype[-x16][-graph]``, or None where it cannot run
    here (``-graph``: replayed from a CUDA graph, :class:`g2m.serve.inference.StudentInference`)."""
    from g2m.serve.inference import StudentInference, fused_supported, triton_available

    backend, dtype = name.split("-")[:2]
    if backend == "fused" and not (
        device.type == "cuda" and triton_available() and fused_supported(student)
    ):
        return None
    graph = name.endswith("-graph")
    if graph and device.type != "cuda":
        return None
    operand = torch.bfloat16 if dtype == "bf16" else torch.float32
    return StudentInference(student, device, backend, operand, cuda_graph=graph)


def time_variant(name, engine, x, reference, ceilings: Ceilings, repeats: int) -> dict[str, Any]:
    """ms, nodes/s, floor and error against ``reference`` of one back-end over ``x``.

    A name with ``-x16`` feeds features stored in bf16 (a copy made once, outside the timed
    region); the others read the fp32 features. A ``-graph`` engine is called twice before
    timing (warm-up, then capture), so only replays are timed.
    """
    inputs = x.to(torch.bfloat16) if "-x16" in name else x
    engine(inputs)
    logits = engine(inputs).clone()
    ms = median_ms(lambda: engine(inputs), x.device, repeats=repeats, warmup=3)
    nbytes, flops = student_cost(
        engine.student_args, x.size(0), inputs.element_size(), logits.element_size()
    )
    floor, bound = ceilings.floor_ms(nbytes, flops, name.split("-")[1])
    logits = logits.float()
    extra = {}
    if engine.backend == "fused":
        from g2m.serve.fused_mlp_triton import tuned_config

        extra["kernel"] = engine.kernel
        extra["kernel_config"] = tuned_config(engine.kernel)
    return extra | dict(
        variant=name,
        ms=ms,
        nodes_per_s=x.size(0) / ms * 1e3,
        floor_ms=floor,
        bound=bound,
        over_floor=ms / floor,
        rel_error=float((logits - reference).norm() / reference.norm()),
        argmax_agreement=float((logits.argmax(1) == reference.argmax(1)).float().mean()),
    )


def time_students(student, x: torch.Tensor, ceilings: Ceilings, names: list[str], repeats: int):
    """One row per back-end that runs here; a back-end that fails is reported, not fatal."""
    with torch.no_grad():
        reference = copy.deepcopy(student).to(x.device).eval()(x).float()
    rows = []
    for name in names:
        try:
            engine = make_engine(student, x.device, name)
            if engine is not None:
                rows.append(time_variant(name, engine, x, reference, ceilings, repeats))
        except Exception as err:  # a benchmark reports a broken back-end and goes on
            rows.append(dict(variant=name, error=f"{type(err).__name__}: {err}"[:500]))
    return rows


def build_teacher(args: argparse.Namespace, num_features: int, num_classes: int, device):
    from torch_geometric.nn.models import GraphSAGE

    from g2m.models.teacher import GNNTeacher

    gnn = GraphSAGE(num_features, args.hidden, args.teacher_layers, num_classes, root_weight=False)
    return GNNTeacher(gnn, self_loops=True).to(device).eval()


def time_teacher(teacher, x, edge_index, repeats: int) -> dict[str, float]:
    device = x.device
    begin = time.perf_counter()
    adj_t = teacher.adjacency(edge_index, x.size(0))
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    build_s = time.perf_counter() - begin
    ms = median_ms(lambda: teacher(x, adj_t), device, repeats=repeats, warmup=1)
    return {"ms": ms, "adjacency_build_s": build_s, "nodes_per_s": x.size(0) / ms * 1e3}


def latency(teacher, student, x, edge_index, hops: int, device: torch.device) -> dict[str, float]:
    from g2m.bench.latency import CSRGraph, glnn_latency
    from g2m.models.teacher import sparse_adjacency

    graph = CSRGraph.from_sparse(sparse_adjacency(edge_index.to(device), x.size(0)))
    teacher, student = teacher.to(device), student.to(device).eval()
    return glnn_latency(teacher, student, x.to(device), graph, hops)


DEFAULT_VARIANTS = {
    "cuda": [
        "eager-fp32",
        "eager-bf16",
        "compile-bf16",
        "fused-bf16",
        "fused-bf16-x16",
        "fused-bf16-graph",
        "fused-bf16-x16-graph",
    ],
    "cpu": ["eager-fp32", "eager-bf16"],
}


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m g2m.bench", description=__doc__.split("\n")[0])
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument(
        "--preset",
        choices=sorted(PRESETS),
        default=None,
        help="graph size: products (default on GPU) or small (default on CPU)",
    )
    for name, kind in (("nodes", int), ("degree", float), ("features", int), ("classes", int)):
        p.add_argument(f"--{name}", type=kind, default=None, help="override the preset")
    p.add_argument("--hidden", type=int, default=256, help="student and teacher width")
    p.add_argument("--layers", type=int, default=3, help="student layers")
    p.add_argument("--teacher-layers", type=int, default=3)
    p.add_argument("--student", default=None, help="a trained student.pt to time instead")
    p.add_argument(
        "--variants",
        nargs="+",
        default=None,
        help="student back-ends (backend-dtype[-x16][-graph]): "
        + ", ".join(DEFAULT_VARIANTS["cuda"]),
    )
    p.add_argument(
        "--fanout",
        default="15,10,5",
        help="teacher neighbours per hop for the latency protocol, seed-outwards "
        "(GLNN's products SAGE: 15,10,5); 'full' for exact neighbourhoods",
    )
    p.add_argument("--repeats", type=int, default=20)
    p.add_argument("--no-latency", action="store_true", help="skip GLNN's 10-node protocol")
    p.add_argument("--out", default="bench.json", help="where the JSON goes")
    args = p.parse_args(argv)
    args.device = torch.device(args.device)
    if args.device.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError("--device cuda was asked for but no CUDA device is visible.")
    preset = PRESETS[args.preset or ("products" if args.device.type == "cuda" else "small")]
    for key, value in preset.items():
        if getattr(args, key) is None:
            setattr(args, key, value)
    args.fanouts = parse_fanouts(args.fanout, args.teacher_layers)
    args.variants = args.variants or DEFAULT_VARIANTS[args.device.type]
    return args


def parse_fanouts(text: str, layers: int) -> list[int | None]:
    if text == "full":
        return [None] * layers
    try:
        fanouts = [int(v) for v in text.split(",")]
    except ValueError:
        fanouts = []
    if len(fanouts) != layers or min(fanouts) < 1:
        raise ConfigError(
            f"--fanout must be 'full' or {layers} positive integers (one per teacher layer), "
            f"got '{text}'."
        )
    return fanouts


def device_name(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return f"CPU ({platform.processor() or platform.machine()}, {torch.get_num_threads()} threads)"


def run(args: argparse.Namespace) -> dict[str, Any]:
    device = args.device
    torch.manual_seed(0)
    result: dict[str, Any] = {"device": device_name(device), "torch": torch.__version__}
    ceilings = measure_ceilings(device)
    result["ceilings"] = {
        "bandwidth_gb_s": ceilings.bandwidth / 1e9,
        **{f"matmul_{k}_tflop_s": v / 1e12 for k, v in ceilings.rates.items()},
    }
    graph, seconds = build_graph(args, device)
    result["graph"] = {
        "nodes": graph.num_nodes,
        "directed_edges": graph.edge_index.size(1),
        "features": args.features,
        "classes": args.classes,
        "generated_s": seconds,
    }
    student = build_student(args, args.features, args.classes).to(device)
    result["student"] = {
        "model": student.init_args,
        "variants": time_students(student, graph.x, ceilings, args.variants, args.repeats),
    }
    teacher = build_teacher(args, args.features, args.classes, device)
    result["teacher"] = {
        "model": "GraphSAGE (gcn aggregator), fp32, CSR aggregation",
        "layers": args.teacher_layers,
        "hidden": args.hidden,
        **time_teacher(teacher, graph.x, graph.edge_index, max(3, args.repeats // 4)),
    }
    timed = [row["ms"] for row in result["student"]["variants"] if "ms" in row]
    if not timed:
        raise RuntimeError("every student back-end failed: " + str(result["student"]))
    result["teacher_over_fastest_student"] = result["teacher"]["ms"] / min(timed)
    if device.type == "cuda":
        result["peak_gpu_memory_gb"] = torch.cuda.max_memory_allocated(device) / 2**30
    if not args.no_latency:
        result["latency"] = {"fanouts": args.fanout}
        devices = [device] + ([torch.device("cpu")] if device.type == "cuda" else [])
        for where in devices:
            result["latency"][where.type] = latency(
                teacher, student, graph.x, graph.edge_index, args.fanouts, where
            )
    return result


def format_report(r: dict[str, Any]) -> str:
    g, c = r["graph"], r["ceilings"]
    lines = [
        f"g2m bench | {r['device']} | torch {r['torch']}",
        f"graph: {g['nodes']:,} nodes, {g['directed_edges']:,} directed edges, "
        f"F={g['features']}, C={g['classes']} (generated in {g['generated_s']:.1f} s)",
        f"ceilings: copy {c['bandwidth_gb_s']:.0f} GB/s, matmul fp32 "
        f"{c['matmul_fp32_tflop_s']:.2f} / bf16 {c['matmul_bf16_tflop_s']:.2f} TFLOP/s",
        "",
        f"{'student over all nodes':<24}{'ms':>10}{'Mnodes/s':>11}{'floor ms':>10}"
        f"{'x floor':>9}{'rel err':>10}{'argmax':>8}",
    ]
    for v in r["student"]["variants"]:
        if "error" in v:
            lines.append(f"{v['variant']:<24}failed: {v['error'][:80]}")
            continue
        lines.append(
            f"{v['variant']:<24}{v['ms']:>10.3f}{v['nodes_per_s'] / 1e6:>11.1f}"
            f"{v['floor_ms']:>10.3f}{v['over_floor']:>9.2f}{v['rel_error']:>10.1e}"
            f"{v['argmax_agreement']:>8.4f}"
        )
        if v.get("kernel_config"):
            lines.append(f"{'':<4}kernel: {v.get('kernel', '?')} {v['kernel_config']}")
    t = r["teacher"]
    lines += [
        f"{'teacher full graph':<24}{t['ms']:>10.3f}{t['nodes_per_s'] / 1e6:>11.1f}",
        f"teacher / fastest student: {r['teacher_over_fastest_student']:.0f}x",
    ]
    if "peak_gpu_memory_gb" in r:
        lines.append(f"peak GPU memory: {r['peak_gpu_memory_gb']:.1f} GiB")
    if "latency" in r:
        lines += ["", f"GLNN latency, 10 random nodes (teacher fan-out {r['latency']['fanouts']}):"]
        for where, v in r["latency"].items():
            if where != "fanouts":
                lines.append(
                    f"  {where:<5} teacher {v['teacher_ms']:9.3f} ms   student "
                    f"{v['student_ms']:7.3f} ms   {v['speedup']:7.0f}x"
                )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> dict[str, Any]:
    result: dict[str, Any] = {}

    def bench() -> None:
        args = parse_args(argv)
        result.update(run(args))
        print(format_report(result))
        from g2m.io import atomic_json

        atomic_json(result, Path(args.out))
        print(f"\nJSON: {args.out}")

    run_tool("g2m.bench", bench)
    return result
