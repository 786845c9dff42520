"""g2m.models.aggregation: the mean with a stored transpose is PyG's mean (values and
gradients), and the row-restricted adjacencies hold exactly the entries they should."""

from __future__ import annotations

import pytest
import torch
from torch_geometric.utils import spmm

from g2m.models.aggregation import mean_aggregate, receptive_rows, select_rows
from g2m.models.teacher import sparse_adjacency


def adjacency(num_nodes: int = 60, num_edges: int = 240, seed: int = 0) -> torch.Tensor:
    gen = torch.Generator().manual_seed(seed)
    edge_index = torch.randint(0, num_nodes, (2, num_edges), generator=gen)
    edge_index = edge_index[:, (edge_index != 7).all(0)]  # node 7: no entries, mean 0
    return sparse_adjacency(edge_index, num_nodes)


def test_the_mean_and_its_gradient_are_pygs():
    adj = adjacency()
    x = torch.randn(adj.shape[1], 9, requires_grad=True)
    weights = torch.randn(adj.shape[0], 9)
    expected = spmm(adj, x, reduce="mean")
    (expected * weights).sum().backward()
    expected_grad, x.grad = x.grad, None
    got = mean_aggregate(adj, x)
    (got * weights).sum().backward()
    torch.testing.assert_close(got, expected)
    torch.testing.assert_close(x.grad, expected_grad)
    assert got[7].abs().sum() == 0 and expected_grad.abs().sum() > 0
    # the transpose is built once per adjacency and reused
    again = mean_aggregate(adj, x)
    torch.testing.assert_close(again, expected)


def test_the_gradient_matches_the_dense_matrix():
    adj = adjacency(num_nodes=20, num_edges=50, seed=3)
    dense = adj.to_dense()
    mean = dense / dense.sum(1, keepdim=True).clamp(min=1)
    x = torch.randn(20, 4, dtype=torch.float64, requires_grad=True)
    adj64 = torch.sparse_csr_tensor(
        adj.crow_indices(), adj.col_indices(), adj.values().double(), size=adj.shape
    )
    assert torch.autograd.gradcheck(lambda t: mean_aggregate(adj64, t), (x,))
    torch.testing.assert_close(mean_aggregate(adj64, x), mean.double() @ x)


def test_gathering_in_bfloat16_on_a_cpu_says_it_needs_cuda():
    adj = adjacency()
    with pytest.raises(ValueError, match="needs a CUDA adjacency"):
        mean_aggregate(adj, torch.randn(adj.shape[1], 3), torch.bfloat16)


def test_selected_rows_are_those_rows_of_the_matrix():
    adj = adjacency()
    dense = adj.to_dense()
    rows = torch.tensor([7, 0, 31, 31, 59])  # any order, repeats, an empty row
    torch.testing.assert_close(select_rows(adj, rows).to_dense(), dense[rows])
    columns = torch.unique(select_rows(adj, rows).col_indices())
    renumbered = select_rows(adj, rows, columns=columns).to_dense()
    torch.testing.assert_close(renumbered, dense[rows][:, columns])
    assert dense[rows].sum() == renumbered.sum()  # every entry kept: no column outside


def test_receptive_rows_walk_the_layers_back_from_the_rows_read():
    adj = adjacency()
    dense = adj.to_dense() != 0
    rows = torch.tensor([3, 40])
    needed = receptive_rows(adj, rows, 3)
    assert len(needed) == 3 and torch.equal(needed[-1], rows)
    for below, above in zip(needed[:-1], needed[1:], strict=True):
        expected = torch.nonzero(dense[above].any(0)).flatten()
        assert torch.equal(below, expected)


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
@pytest.mark.parametrize("gather_dtype", [None, torch.bfloat16])
def test_on_a_gpu_the_mean_and_its_gradient_are_pygs(gather_dtype):
    adj = adjacency(num_nodes=2000, num_edges=20000).cuda()
    x = torch.randn(adj.shape[1], 64, device="cuda", requires_grad=True)
    weights = torch.randn(adj.shape[0], 64, device="cuda")
    expected = spmm(adj, x, reduce="mean")
    (expected * weights).sum().backward()
    expected_grad, x.grad = x.grad, None
    got = mean_aggregate(adj, x, gather_dtype)
    (got * weights).sum().backward()
    tolerance = 1e-5 if gather_dtype is None else 2e-2
    assert got.dtype == torch.float32
    torch.testing.assert_close(got, expected, atol=tolerance, rtol=tolerance)
    torch.testing.assert_close(x.grad, expected_grad, atol=tolerance, rtol=tolerance)
