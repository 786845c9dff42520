"""The products-scale teacher epoch against the memory floor of its aggregations (GPU).

The SAGE teacher of ``dataset=synthetic-products`` (3 layers, 256 hidden, batch norm, the
"gcn" aggregator: :math:`h_i' = W\\,\\mathrm{mean}_{j \\in N(i) \\cup \\{i\\}} h_j`) aggregates
with a CSR sparse-dense product :math:`\\hat A X` (cuSPARSE) on inputs of width 100, 256 and
256. One product reads the CSR structure (row pointers and int64 column ids, fp32 values)
and gathers one row of X per edge; two floors bracket it:

- ``cached``: X read once (every gathered row a cache hit after the first) plus the structure
  plus the output written once: bytes / copy bandwidth;
- ``gather``: one uncached row of X per edge (E·d·4 bytes) plus the structure and output.

Everything is timed in this process with CUDA events (median of 10 after 2 warm-ups): the
device copy bandwidth, each product, one aggregation forward and backward (autograd's
transposed product against :func:`g2m.models.aggregation.mean_aggregate`'s stored
transpose), and for PyG's SAGE and g2m's options (:mod:`g2m.models.sage`) the validation
forward (eval, the 1,410 validation nodes' logits) and one training step (forward, loss on
the 940 training nodes, backward, Adam). experiments/gpu_scale/README.md.

    python experiments/gpu_scale/teacher_floor.py [DATASET_OVERRIDES...]
"""

from __future__ import annotations

import sys
from functools import partial

import torch
import torch.nn.functional as F
from torch_geometric.nn.models import GraphSAGE

import g2m
from g2m.bench.timing import median_ms
from g2m.models.aggregation import degrees, mean_aggregate
from g2m.models.sage import GraphSAGE as ReorderedGraphSAGE
from g2m.models.teacher import sparse_adjacency


def main(overrides: list[str]) -> None:
    device = "cuda" if torch.cuda.is_available() else "cpu"  # cpu: a smoke test on a small draw

    def ms(fn, *args) -> float:
        return median_ms(lambda: fn(*args), device, repeats=10, warmup=2)

    graph = g2m.load_dataset("synthetic-products", overrides).data
    x, y = graph.x.to(device), graph.y.to(device)
    n = x.shape[0]
    adj = sparse_adjacency(graph.edge_index.to(device), n, self_loops=True)
    nnz = adj.values().numel()
    structure = adj.crow_indices().numel() * 8 + nnz * (8 + 4)

    def floor_ms(width: int, gathered: bool) -> float:
        """Bytes of one product A @ X of this width over the copy bandwidth."""
        rows_read = nnz if gathered else n
        return (structure + (rows_read + n) * width * 4) / bandwidth * 1e3

    buffer = torch.empty(2**30 if device == "cuda" else 2**24, device=device)  # 4 GiB on GPU
    bandwidth = 2 * buffer.numel() * 4 / (ms(torch.clone, buffer) / 1e3)  # read + write, B/s
    buffer = None
    name = torch.cuda.get_device_name() if device == "cuda" else "cpu"
    print(f"{name} | N={n:,} nnz(A+I)={nnz:,} | copy {bandwidth / 1e9:,.0f} GB/s")
    print("| op | ms | cached floor ms | x | gather floor ms | x |")
    print("|---|---|---|---|---|---|")
    for width in (100, 256, 47):
        took = ms(torch.matmul, adj, torch.randn(n, width, device=device))
        cached, gather = floor_ms(width, False), floor_ms(width, True)
        print(
            f"| A @ X, width {width} | {took:.2f} | {cached:.2f} | {took / cached:.1f} | "
            f"{gather:.2f} | {took / gather:.2f} |"
        )
    forward_widths = (100, 256, 256)  # SAGEConv aggregates its input, then projects
    forward_gather = sum(floor_ms(w, True) for w in forward_widths)
    # backward: the gradient of each aggregation but the first is one more product A^T G
    step_gather = forward_gather + 2 * floor_ms(256, True)

    # PyG's GraphSAGE and g2m's reordered one (g2m.models.sage: the first aggregation kept,
    # the last layer projected to 47 before aggregating), with the same weights
    pyg = GraphSAGE(
        100,
        256,
        3,
        47,
        dropout=0.5,
        norm="batch_norm",
        norm_kwargs={"momentum": 0.5},
        root_weight=False,
    ).to(device)
    options = dict(dropout=0.5, norm="batch_norm", norm_kwargs={"momentum": 0.5},
                   root_weight=False)  # fmt: skip
    reordered = ReorderedGraphSAGE(100, 256, 3, 47, **options).to(device)
    transposed = ReorderedGraphSAGE(100, 256, 3, 47, stored_transpose=True, **options)
    bf16 = ReorderedGraphSAGE(
        100, 256, 3, 47, stored_transpose=True, gather_dtype="bfloat16", **options
    )  # fmt: skip
    transposed, bf16 = transposed.to(device), bf16.to(device)
    for model in (reordered, transposed, bf16):
        model.load_state_dict(pyg.state_dict())
    order = torch.randperm(n, device=device)
    train, val = order[: 47 * 20], order[47 * 20 : 47 * 50]  # the CPF split's sizes
    with torch.no_grad():
        pyg.eval(), reordered.eval()
        gap = (pyg(x, adj) - reordered(x, adj)).abs().max().item()
    print(f"max |PyG - reordered| logit, eval mode: {gap:.2e}")

    print("\n| one aggregation, forward + backward | width | ms |")
    print("|---|---|---|")
    for width in (256, 47):
        h = torch.randn(n, width, device=device, requires_grad=True)
        grad = torch.randn(n, width, device=device)

        deg = degrees(adj)

        def autograd_mean(h=h, grad=grad, deg=deg):
            with torch.enable_grad():
                (torch.sparse.mm(adj, h) / deg).backward(grad)

        def stored_mean(h=h, grad=grad, dtype=None):
            with torch.enable_grad():
                mean_aggregate(adj, h, dtype).backward(grad)

        rows = [("autograd (transposed product)", autograd_mean), ("stored transpose", stored_mean)]
        if device == "cuda":
            rows.append(
                ("stored transpose, bf16 gathers", partial(stored_mean, dtype=torch.bfloat16))
            )
        for label, fn in rows:
            print(f"| {label} | {width} | {ms(fn):.2f} |")
    h = grad = None

    # floors of the reordered teacher: widths 256 and 47 (the first product is kept)
    reordered_gather = floor_ms(256, True) + floor_ms(47, True)
    reordered_step = reordered_gather + floor_ms(256, True) + floor_ms(47, True)
    print("\n| op | ms | cached floor ms | x | gather floor ms | x |")
    print("|---|---|---|---|---|---|")
    variants = [
        ("PyG", pyg, forward_gather, step_gather, False),
        ("reordered", reordered, reordered_gather, reordered_step, False),
        ("reordered + stored transpose", transposed, reordered_gather, reordered_step, False),
        ("reordered + stored transpose + rows", transposed, None, None, True),
    ]
    if device == "cuda":
        variants.append(
            ("reordered + stored transpose + rows + bf16 gathers", bf16, None, None, True)
        )
    for label, teacher, fwd_floor, step_floor, restricted in variants:
        optim = torch.optim.Adam(teacher.parameters(), lr=0.01)

        def logits(teacher, rows, restricted=restricted):
            return teacher(x, adj, rows=rows) if restricted else teacher(x, adj)[rows]

        def forward(teacher=teacher):
            teacher.eval()
            with torch.no_grad():
                return logits(teacher, val)

        def step(teacher=teacher, optim=optim):
            with torch.enable_grad():  # median_ms times under no_grad
                teacher.train()
                optim.zero_grad()
                F.cross_entropy(logits(teacher, train), y[train]).backward()
                optim.step()

        fwd, train_step = ms(forward), ms(step)
        for what, took, floor in (("validation forward (eval)", fwd, fwd_floor),
                                  ("training step", train_step, step_floor)):  # fmt: skip
            vs = f"{floor:.1f} | {took / floor:.2f}" if floor else " | "
            print(f"| {label} teacher {what} | {took:.1f} | | | {vs} |")
        print(f"| {label} epoch = step + forward | {train_step + fwd:.1f} | | | | |")
    peak = torch.cuda.max_memory_allocated() / 2**30 if device == "cuda" else 0.0
    print(f"peak {peak:.1f} GiB")


if __name__ == "__main__":
    main(sys.argv[1:])
