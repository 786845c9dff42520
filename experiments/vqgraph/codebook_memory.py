"""Peak memory of VQGraph's codebook stage against graph size (a benchmark, not a test).

Each size runs in its own process (so its peak RSS is its own): a CSBM graph with N nodes
and average degree 10 (E = 5N undirected edges), the tokenizer of ``loss=vq`` trained for a
few full-graph epochs on CPU. A dense N x N reconstruction target (the released VQGraph
code's) would need 4 N^2 bytes; the table shows that next to the measured peak.

    python experiments/vqgraph/codebook_memory.py --sizes 5000 20000 80000 --epochs 3
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time


def measure(num_nodes: int, epochs: int) -> dict:
    import torch
    from torch_geometric.nn.models import GraphSAGE

    from g2m.data.splits import CPFSplit, make_split
    from g2m.data.synthetic import make_csbm
    from g2m.lit.codebook import CodebookSystem
    from g2m.models.codebook import GraphTokenizer

    graph = make_csbm(num_nodes=num_nodes, num_classes=5, num_features=128, avg_degree=10)
    split = make_split(graph, CPFSplit("cpf", 20, 30), 0, 0.0)
    encoder = GraphSAGE(128, 128, num_layers=2, out_channels=128)
    tokenizer = GraphTokenizer(encoder, 128, 5, codebook_size=512, dead_code_threshold=2)
    weights = {"ce": 1.0, "feature": 1.0, "structure": 1.0}
    system = CodebookSystem(tokenizer, graph, split, 0.005, 0.0, weights)
    system.log = lambda *args, **kwargs: None  # no Trainer attached: skip logging
    optimiser = torch.optim.Adam(tokenizer.parameters(), lr=0.005)
    start = time.perf_counter()
    for _ in range(epochs):
        loss = system.training_step(torch.zeros(1), 0)
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
    seconds = (time.perf_counter() - start) / epochs
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return {
        "nodes": num_nodes,
        "edges": int(graph.edge_index.size(1)),
        "seconds_per_epoch": round(seconds, 3),
        "peak_rss_mb": round(peak_mb),
        "dense_adjacency_mb": round(4 * num_nodes**2 / 2**20),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[5000, 20000, 80000])
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--one", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        print(json.dumps(measure(args.one, args.epochs)))
        return
    print("| nodes | directed edges | s/epoch | peak RSS (MB) | dense N x N fp32 (MB) |")
    print("|---|---|---|---|---|")
    for size in args.sizes:
        out = subprocess.run(
            [sys.executable, __file__, "--one", str(size), "--epochs", str(args.epochs)],
            capture_output=True,
            text=True,
            check=True,
        )
        row = json.loads(out.stdout.strip().splitlines()[-1])
        print(
            f"| {row['nodes']} | {row['edges']} | {row['seconds_per_epoch']} | "
            f"{row['peak_rss_mb']} | {row['dense_adjacency_mb']} |"
        )


if __name__ == "__main__":
    main()
