"""How hard is a CSBM graph? Nearest-centroid accuracy on features and after aggregation.

A quick guide for choosing ``homophily`` and ``feature_signal`` of a synthetic dataset: the
accuracy of a nearest-class-centroid rule (centroids from all labels: an optimistic bound)
on the raw features (what an MLP can hope for) and after one, two and three rounds of mean
aggregation over neighbours and self (what a GCN-like teacher of that depth sees). Degree and
class count matter; the node count barely does, so a small graph calibrates a large one.

    python experiments/gpu_scale/calibrate_csbm.py --nodes 30000 --degree 50.52 --classes 47 \\
        --features 100 --homophily 0.1 0.2 0.3 --signal 1.5 2.0
"""

from __future__ import annotations

import argparse

import torch

from g2m.data.synthetic import make_csbm

HOPS = ("1 hop", "2 hops", "3 hops")


def centroid_accuracy(x: torch.Tensor, y: torch.Tensor, num_classes: int) -> float:
    centres = torch.stack([x[y == c].mean(0) for c in range(num_classes)])
    scores = x @ centres.T - 0.5 * (centres * centres).sum(1)
    return float((scores.argmax(1) == y).float().mean())


def mean_aggregate(x: torch.Tensor, edge_index: torch.Tensor) -> torch.Tensor:
    """:math:`(x_i + \\sum_{j \\in N(i)} x_j) / (1 + \\deg i)`."""
    out = x.clone().index_add_(0, edge_index[1], x[edge_index[0]])
    degree = torch.bincount(edge_index[1], minlength=x.size(0)).float()
    return out / (1 + degree)[:, None]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--nodes", type=int, default=30000)
    p.add_argument("--degree", type=float, default=50.52)
    p.add_argument("--classes", type=int, default=47)
    p.add_argument("--features", type=int, default=100)
    p.add_argument("--homophily", type=float, nargs="+", default=[0.1, 0.2, 0.3])
    p.add_argument("--signal", type=float, nargs="+", default=[1.5, 2.0])
    args = p.parse_args()
    print(f"{'signal':>7}{'homophily':>10}{'features':>10}" + "".join(f"{h:>10}" for h in HOPS))
    for signal in args.signal:
        for homophily in args.homophily:
            g = make_csbm(args.nodes, args.classes, args.features, args.degree, homophily, signal)
            views = [g.x]
            for _ in HOPS:
                views.append(mean_aggregate(views[-1], g.edge_index))
            accs = [centroid_accuracy(h, g.y, args.classes) for h in views]
            print(f"{signal:>7}{homophily:>10}" + "".join(f"{a:>10.3f}" for a in accs))


if __name__ == "__main__":
    main()
