"""GLNN's latency protocol: fetching a neighbourhood gives the teacher's exact outputs."""

from __future__ import annotations

import pytest
import torch
from torch_geometric.nn.models import GraphSAGE

from g2m.bench.latency import CSRGraph, fetch_neighbourhood, glnn_latency, neighbours, teacher_query
from g2m.models.student import MLPStudent
from g2m.models.teacher import GNNTeacher, sparse_adjacency


def raw_csr(graph) -> CSRGraph:
    return CSRGraph.from_sparse(sparse_adjacency(graph.edge_index, graph.num_nodes))


@pytest.mark.parametrize("layers", [1, 2, 3])
@pytest.mark.parametrize(
    ("gnn", "self_loops"),
    [
        (lambda L: GraphSAGE(8, 16, L, 3, root_weight=False), True),
        (lambda L: GraphSAGE(8, 16, L, 3), False),
    ],
)
def test_fetched_neighbourhood_gives_the_full_graph_outputs(tiny_graph, layers, gnn, self_loops):
    torch.manual_seed(0)
    teacher = GNNTeacher(gnn(layers), self_loops=self_loops).eval()
    with torch.no_grad():
        full = teacher(tiny_graph.x, teacher.adjacency(tiny_graph.edge_index, tiny_graph.num_nodes))
    seeds = torch.tensor([3, 17, 17, 64, 101])  # a repeated seed too
    out = teacher_query(teacher, tiny_graph.x, raw_csr(tiny_graph), seeds, [None] * layers)
    torch.testing.assert_close(out, full[seeds], rtol=1e-5, atol=1e-5)


def test_fetching_stops_at_the_last_needed_hop(tiny_graph):
    graph = raw_csr(tiny_graph)
    seeds = torch.tensor([5])
    nodes, edge_index, positions = fetch_neighbourhood(graph, seeds, [None])
    _, direct = neighbours(graph, seeds)
    assert set(nodes.tolist()) == {5} | set(direct.tolist())
    assert int(positions) == 0 and edge_index.size(1) == direct.numel()
    assert bool((edge_index[1] == 0).all())  # one hop: only the seed receives messages


def test_sampled_fetching_draws_at_most_the_fanout(tiny_graph):
    graph = raw_csr(tiny_graph)
    seeds = torch.arange(10)
    gen = torch.Generator().manual_seed(0)
    nodes, edge_index, _ = fetch_neighbourhood(graph, seeds, [2, 1], generator=gen)
    degree = graph.rowptr[1:] - graph.rowptr[:-1]
    first_hop = int((degree[seeds] > 0).sum()) * 2
    assert edge_index.size(1) <= first_hop + nodes.numel()
    targets = nodes[edge_index[1]]
    for seed in seeds[degree[seeds] > 0].tolist():
        assert int((targets == seed).sum()) == 2


def test_glnn_latency_reports_both_sides(tiny_graph):
    teacher = GNNTeacher(GraphSAGE(8, 16, 2, 3, root_weight=False), self_loops=True).eval()
    student = MLPStudent(8, 16, 3).eval()
    result = glnn_latency(
        teacher, student, tiny_graph.x, raw_csr(tiny_graph), [None, None], draws=2
    )
    assert result["teacher_ms"] > 0 and result["student_ms"] > 0
    assert result["speedup"] == pytest.approx(result["teacher_ms"] / result["student_ms"])
