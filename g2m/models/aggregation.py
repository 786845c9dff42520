r"""Mean aggregation over a CSR adjacency, and the row-restricted adjacencies it runs on.

For the transposed adjacency :math:`A^\top` (row *i* lists the sources of node *i*, as
:func:`g2m.models.teacher.sparse_adjacency` builds it) and degrees
:math:`d_i = \max(1, |\mathcal{N}(i)|)`, mean aggregation is

.. math::
    \operatorname{mean}(X) = D^{-1} A^\top X, \qquad
    \frac{\partial \mathcal{L}}{\partial X} = A \, D^{-1} G
    \quad (G = \partial \mathcal{L} / \partial \operatorname{mean}(X)).

PyG computes the forward as ``torch.sparse.mm(adj, x) / deg`` and leaves the backward to
autograd, which multiplies by the *transpose* of the CSR matrix in every step: on a GPU a
transposed SpMM (cuSPARSE scatters each row of G into many output rows), which cuSPARSE
also offers only in fp32. :func:`mean_aggregate` keeps the transposed matrix, built once per
adjacency, and runs the backward as a second non-transposed SpMM: the same gradient, a
gather in both directions. ``gather_dtype=torch.bfloat16`` gathers rows in bf16 (half the
bytes of the memory-bound product; cuSPARSE accumulates in fp32) and returns the input's
dtype: an approximation, opt-in, its accuracy measured in ``experiments/gpu_scale``.

:func:`select_rows` cuts the rows a computation needs out of an adjacency, and
:func:`receptive_rows` walks a stack of layers backwards from the rows a loss reads to the
rows each layer must produce (``g2m.models.sage.GraphSAGE``'s ``rows`` argument).
"""

from __future__ import annotations

import torch
from torch import Tensor
from torch.utils.weak import WeakTensorKeyDictionary

_TRANSPOSED = WeakTensorKeyDictionary()  # adjacency -> (its transpose, degrees, {dtype: copies})


def csr(crow: Tensor, col: Tensor, values: Tensor, shape: tuple[int, int]) -> Tensor:
    return torch.sparse_csr_tensor(crow, col, values, size=shape, check_invariants=False)


def degrees(adj: Tensor) -> Tensor:
    """``[rows, 1]`` entries per row, at least 1 (a row without entries aggregates to 0)."""
    crow = adj.crow_indices()
    return (crow[1:] - crow[:-1]).clamp(min=1).view(-1, 1)


def transposed(adj: Tensor) -> Tensor:
    """The CSR matrix of ``adj``'s transpose: ``adj``'s CSC buffers (one sort by column,
    built once per adjacency and kept)."""
    csc = adj.to_sparse_csc()
    rows, cols = adj.shape
    return csr(csc.ccol_indices(), csc.row_indices(), csc.values(), (cols, rows))


def _prepared(adj: Tensor, dtype: torch.dtype) -> tuple[Tensor, Tensor, Tensor]:
    """``(adj, its transpose, degrees)`` with values in ``dtype``, built once per adjacency."""
    entry = _TRANSPOSED.get(adj)
    if entry is None:
        entry = (transposed(adj), degrees(adj), {})
        _TRANSPOSED[adj] = entry
    adj_t, deg, copies = entry
    if dtype == adj.values().dtype:
        return adj, adj_t, deg
    if dtype not in copies:
        copies[dtype] = tuple(
            csr(m.crow_indices(), m.col_indices(), m.values().to(dtype), tuple(m.shape))
            for m in (adj, adj_t)
        )
    return (*copies[dtype], deg)


def _mean(adj: Tensor, x: Tensor, deg: Tensor, dtype: torch.dtype) -> Tensor:
    """``D^-1 A X`` with ``X`` gathered in ``dtype``, returned in ``X``'s dtype."""
    return (torch.sparse.mm(adj, x.to(dtype)) / deg).to(x.dtype)


class _MeanAggregate(torch.autograd.Function):
    """``D^-1 A X`` with the backward ``A^T (D^-1 G)`` through the stored transpose."""

    @staticmethod
    def forward(ctx, x: Tensor, adj: Tensor, adj_t: Tensor, deg: Tensor, dtype) -> Tensor:
        ctx.adj_t, ctx.deg, ctx.dtype, ctx.input_dtype = adj_t, deg, dtype, x.dtype
        return _mean(adj, x, deg, dtype)

    @staticmethod
    def backward(ctx, grad: Tensor):
        scaled = (grad / ctx.deg).to(ctx.dtype)
        return torch.sparse.mm(ctx.adj_t, scaled).to(ctx.input_dtype), None, None, None, None


def mean_aggregate(adj: Tensor, x: Tensor, gather_dtype: torch.dtype | None = None) -> Tensor:
    """``[rows, d]`` mean over each row's entries of ``x`` (``[cols, d]``), for a CSR ``adj``
    of shape ``[rows, cols]``; see the module docstring for the backward and ``gather_dtype``.
    """
    dtype = gather_dtype or x.dtype
    if dtype != x.dtype and not adj.is_cuda:
        raise ValueError(
            f"gathering in {dtype} needs a CUDA adjacency (torch's CPU sparse product has no "
            f"{dtype} kernel); got one on {adj.device}: leave the gather dtype unset on CPU."
        )
    adj, adj_t, deg = _prepared(adj, dtype)
    if not (x.requires_grad and torch.is_grad_enabled()):
        return _mean(adj, x, deg, dtype)
    return _MeanAggregate.apply(x, adj, adj_t, deg, dtype)


def select_rows(adj: Tensor, rows: Tensor, columns: Tensor | None = None) -> Tensor:
    """``adj[rows]`` as a CSR matrix (each row's entries in their order). With ``columns``
    (sorted node ids that include every column these rows use), the columns are renumbered
    to positions in ``columns``: the matrix then multiplies the rows ``x[columns]`` only."""
    crow, col, values = adj.crow_indices(), adj.col_indices(), adj.values()
    starts, ends = crow[rows], crow[rows + 1]
    lengths = ends - starts
    new_crow = torch.zeros(rows.numel() + 1, dtype=crow.dtype, device=crow.device)
    torch.cumsum(lengths, 0, out=new_crow[1:])
    offsets = torch.arange(int(new_crow[-1]), device=crow.device) - torch.repeat_interleave(
        new_crow[:-1], lengths
    )
    picked = torch.repeat_interleave(starts, lengths) + offsets
    cols, num_cols = col[picked], adj.shape[1]
    if columns is not None:
        cols, num_cols = torch.searchsorted(columns, cols), columns.numel()
    return csr(new_crow, cols, values[picked], (rows.numel(), num_cols))


def receptive_rows(adj: Tensor, rows: Tensor, num_layers: int) -> list[Tensor]:
    """The rows each of ``num_layers`` stacked aggregations over ``adj`` must produce for
    the last to produce ``rows``: ``[R_1, ..., R_L = rows]`` with
    :math:`R_{l-1} = \\{j : A_{ij} \\neq 0,\\ i \\in R_l\\}` (sorted)."""
    needed = [rows]
    for _ in range(num_layers - 1):
        needed.insert(0, torch.unique(select_rows(adj, needed[0]).col_indices()))
    return needed
