"""Where FF-G2M's low-frequency term puts its weight, per benchmark graph.

LFD (``g2m/losses/ffg2m.py``) is a mean over the edges with self-loops
:math:`\\tilde{\\mathcal{E}} = \\mathcal{E} \\cup \\{(i,i)\\}`, so a node's own teacher
prediction gets :math:`1/(\\deg i + 1)` of that node's terms, and nodes weigh in proportion
to :math:`\\deg i + 1`. This prints, for the CPF graphs:

- mean degree;
- *self share* :math:`N / |\\tilde{\\mathcal{E}}|`, the part of the LFD weight on self-loops;
- label homophily over :math:`\\tilde{\\mathcal{E}}` (the share of LFD terms whose target node has
  the student node's class), the quantity LFD effectively distils toward;
- the share of the weight carried by the 10% highest-degree nodes.

    G2M_DATA_DIR=../shared/datasets python experiments/ffg2m/lfd_graph_stats.py
"""

from __future__ import annotations

import argparse

import torch

import g2m


def lfd_weight_stats(edge_index: torch.Tensor, labels: torch.Tensor) -> dict[str, float]:
    """The statistics above for a directed edge list without self-loops."""
    n, e = labels.numel(), edge_index.size(1)
    same_class = (labels[edge_index[0]] == labels[edge_index[1]]).sum().item()
    weight = torch.bincount(edge_index[0], minlength=n).double() + 1
    top = weight.sort(descending=True).values[: max(1, n // 10)].sum() / weight.sum()
    return {
        "mean_degree": e / n,
        "self_share": n / (e + n),
        "homophily_with_self_loops": (same_class + n) / (e + n),
        "top10_degree_weight": top.item(),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--datasets", nargs="+", default=["cora", "citeseer", "a-photo", "a-computer"]
    )
    args = parser.parse_args()
    header = [
        "dataset",
        "nodes",
        "mean degree",
        "self share",
        "homophily (with self-loops)",
        "top-10% degree weight",
    ]
    print("| " + " | ".join(header) + " |")
    print("|---" * len(header) + "|")
    for name in args.datasets:
        graph = g2m.load_dataset(name).data
        stats = lfd_weight_stats(graph.edge_index, graph.y)
        cells = [
            name,
            str(graph.num_nodes),
            f"{stats['mean_degree']:.1f}",
            f"{stats['self_share']:.3f}",
            f"{stats['homophily_with_self_loops']:.3f}",
            f"{stats['top10_degree_weight']:.2f}",
        ]
        print("| " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
