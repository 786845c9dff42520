"""Teacher GNNs and the student MLP: shapes, embeddings, sparse aggregation, argument checks."""

from __future__ import annotations

import pytest
import torch
from torch_geometric.nn.models import GAT, GCN, GraphSAGE

from g2m.models import GNNTeacher, MLPStudent
from g2m.models.teacher import sparse_adjacency

TEACHERS = {
    "sage": lambda f, c: GraphSAGE(f, 16, 2, c),
    "sage-gcn-aggr": lambda f, c: GraphSAGE(f, 16, 2, c, root_weight=False),
    "gcn": lambda f, c: GCN(f, 16, 2, c),
    "gat": lambda f, c: GAT(f, 16, 2, c, heads=4),
}


@pytest.mark.parametrize("name", sorted(TEACHERS))
def test_teacher_logits_and_embedding_shapes(name, tiny_graph):
    teacher = GNNTeacher(TEACHERS[name](8, 3)).eval()
    logits, embedding = teacher(tiny_graph.x, tiny_graph.edge_index, return_embedding=True)
    assert logits.shape == (120, 3)
    assert embedding.shape == (120, teacher.embedding_channels) == (120, 16)
    assert torch.equal(teacher(tiny_graph.x, tiny_graph.edge_index), logits)


@pytest.mark.parametrize("name", sorted(TEACHERS))
def test_sparse_adjacency_gives_the_same_outputs(name, tiny_graph):
    directed = tiny_graph.edge_index[:, ::3]  # orientation matters: use a directed graph
    teacher = GNNTeacher(TEACHERS[name](8, 3)).eval()
    dense = teacher(tiny_graph.x, directed)
    sparse = teacher(tiny_graph.x, sparse_adjacency(directed, tiny_graph.num_nodes))
    torch.testing.assert_close(dense, sparse, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("name", sorted(TEACHERS))
def test_the_teachers_adjacency_agrees_with_edges_on_a_graph_with_self_loops(name, tiny_graph):
    # WebKB's graphs have loops: GCNConv given a sparse adjacency used to add a second one
    n = tiny_graph.num_nodes
    loops = torch.arange(0, n, 4).repeat(2, 1)
    edges = torch.cat([tiny_graph.edge_index[:, ::3], loops], dim=1)
    teacher = GNNTeacher(TEACHERS[name](8, 3)).eval()
    by_edges = teacher(tiny_graph.x, edges)
    torch.testing.assert_close(
        teacher(tiny_graph.x, teacher.adjacency(edges, n)), by_edges, atol=1e-5, rtol=1e-5
    )


def test_self_loop_adjacency_makes_sage_average_over_self_and_neighbours():
    # node 0 has neighbour 1; "gcn" aggregation: mean(x0, x1); node 2 isolated: x2
    x = torch.tensor([[1.0], [3.0], [5.0]])
    edge_index = torch.tensor([[1, 0], [0, 1]])
    gnn = GraphSAGE(1, 1, 1, 1, root_weight=False, bias=False)
    teacher = GNNTeacher(gnn, self_loops=True)
    with torch.no_grad():
        gnn.convs[0].lin_l.weight.fill_(1.0)
    out = teacher(x, teacher.adjacency(edge_index, 3))
    torch.testing.assert_close(out, torch.tensor([[2.0], [2.0], [5.0]]))


def test_teacher_must_end_in_its_last_convolution():
    with pytest.raises(ValueError, match="jk=None"):
        GNNTeacher(GraphSAGE(8, 16, 2, 3, jk="cat"))


@pytest.mark.parametrize("residual", [False, True])
@pytest.mark.parametrize("norm", ["none", "batch", "layer"])
@pytest.mark.parametrize("num_layers", [1, 2, 3])
def test_student_shapes(norm, num_layers, residual):
    student = MLPStudent(8, 32, 5, num_layers, dropout=0.2, norm=norm, residual=residual).eval()
    logits, embedding = student(torch.randn(10, 8), return_embedding=True)
    assert logits.shape == (10, 5)
    expected = 8 if num_layers == 1 else 32
    assert embedding.shape == (10, expected) == (10, student.embedding_channels)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"num_layers": 0}, "num_layers"),
        ({"dropout": 1.0}, "dropout"),
        ({"norm": "group"}, "norm"),
        ({"hidden_channels": 0}, "must be >= 1"),
    ],
)
def test_student_rejects_bad_arguments(kwargs, message):
    args = {"in_channels": 8, "hidden_channels": 16, "out_channels": 3} | kwargs
    with pytest.raises(ValueError, match=message):
        MLPStudent(**args)
