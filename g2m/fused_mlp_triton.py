"""The Triton kernel behind :mod:`g2m.fused_mlp` (imported only where Triton is installed).

One program computes ``BLOCK_M`` rows of the logits: layer 1 as a K-loop over feature
blocks, the full-width middle layers, then the last two layers chained over ``BLOCK_H``
column blocks (see :mod:`g2m.fused_mlp` for the math). Accumulation is fp32; operands are
the packed weights' dtype (bf16 on GPU). ``TRITON_INTERPRET=1`` runs it on the CPU (fp16 or
fp32 operands there: the interpreter mis-reads bf16), which is how the tests check it.
"""

from __future__ import annotations

import os

import torch
import triton
import triton.language as tl

from g2m.fused_mlp import PackedMLP

INTERPRETED = os.environ.get("TRITON_INTERPRET") == "1"


# (BLOCK_M, BLOCK_K, BLOCK_H, num_warps, num_stages, PIPELINED); autotuned per model shape.
# BLOCK_H == H computes layer L-1 at full width (one block), i.e. no chaining.
GPU_CONFIGS = [
    (64, 64, 64, 4, 2, False),
    (64, 64, 128, 4, 2, False),
    (64, 64, 256, 4, 2, False),
    (64, 64, 64, 8, 2, False),
    (64, 64, 128, 8, 2, False),
    (64, 64, 256, 8, 2, False),
    (64, 32, 64, 4, 3, True),
    (128, 64, 64, 8, 2, False),
    (128, 64, 128, 8, 2, False),
    (128, 64, 256, 8, 2, False),
    (128, 64, 64, 8, 3, True),
    (128, 32, 128, 8, 3, True),
    (64, 128, 64, 4, 2, False),
    (64, 128, 256, 4, 2, False),
    (128, 128, 128, 8, 2, False),
]


def _configs() -> list[triton.Config]:
    if INTERPRETED:  # one config (the autotuner's timing needs a GPU); small tiles
        return [triton.Config({"BLOCK_M": 16, "BLOCK_K": 32, "BLOCK_H": 32, "PIPELINED": True})]
    return [
        triton.Config(
            {"BLOCK_M": bm, "BLOCK_K": bk, "BLOCK_H": bh, "PIPELINED": p},
            num_warps=w,
            num_stages=s,
        )
        for bm, bk, bh, w, s, p in GPU_CONFIGS
    ]


def _prune(configs: list[triton.Config], named_args: dict, **kwargs) -> list[triton.Config]:
    """Drop configs whose hidden block is wider than the hidden layer."""
    hidden = kwargs.get("H", named_args.get("H"))
    kept = [c for c in configs if c.kwargs["BLOCK_H"] <= hidden]
    return kept or [configs[0]]


@triton.jit
def _chained_block(h, out, j, w_pen_ptr, b_pen_ptr, w_last_ptr, hs, cs, H, BLOCK_H, C_PAD, dtype):
    """``out += relu(h @ W_pen[:, block j] + b) @ W_last[block j, :]`` for one hidden block."""
    js = j * BLOCK_H + tl.arange(0, BLOCK_H)
    a = tl.dot(h, tl.load(w_pen_ptr + hs[:, None] * H + js[None, :]))
    a = tl.maximum(a + tl.load(b_pen_ptr + js)[None, :], 0.0).to(dtype)
    return tl.dot(a, tl.load(w_last_ptr + js[:, None] * C_PAD + cs[None, :]), out)


@triton.jit
def fused_mlp_kernel(
    x_ptr,
    out_ptr,
    w_first_ptr,
    b_first_ptr,
    w_mid_ptr,
    b_mid_ptr,
    w_pen_ptr,
    b_pen_ptr,
    w_last_ptr,
    b_last_ptr,
    M,
    stride_xm,
    stride_om,
    F: tl.constexpr,
    C: tl.constexpr,
    NUM_MID: tl.constexpr,
    CHAINED: tl.constexpr,
    H: tl.constexpr,
    C_PAD: tl.constexpr,
    BLOCK_M: tl.constexpr,
    BLOCK_K: tl.constexpr,
    BLOCK_H: tl.constexpr,
    PIPELINED: tl.constexpr,
):
    rows = tl.program_id(0).to(tl.int64) * BLOCK_M + tl.arange(0, BLOCK_M)
    row_ok = rows < M
    hs = tl.arange(0, H)
    dtype = w_first_ptr.dtype.element_ty

    # layer 1: [BLOCK_M, F] @ [F, H], one feature block at a time (weight rows are padded)
    acc = tl.zeros((BLOCK_M, H), dtype=tl.float32)
    for k0 in range(0, F, BLOCK_K):
        ks = k0 + tl.arange(0, BLOCK_K)
        x = tl.load(
            x_ptr + rows[:, None] * stride_xm + ks[None, :],
            mask=row_ok[:, None] & (ks[None, :] < F),
            other=0.0,
        )
        w = tl.load(w_first_ptr + ks[:, None] * H + hs[None, :])
        acc = tl.dot(x.to(dtype), w, acc)
    h = tl.maximum(acc + tl.load(b_first_ptr + hs)[None, :], 0.0).to(dtype)

    # full-width middle layers
    for layer in tl.static_range(NUM_MID):
        w = tl.load(w_mid_ptr + layer * H * H + hs[:, None] * H + hs[None, :])
        acc = tl.dot(h, w)
        h = tl.maximum(acc + tl.load(b_mid_ptr + layer * H + hs)[None, :], 0.0).to(dtype)

    cs = tl.arange(0, C_PAD)
    if CHAINED:  # layers L-1 and L, one block of layer L-1's units at a time
        out = tl.zeros((BLOCK_M, C_PAD), dtype=tl.float32)
        if PIPELINED:  # a loop the compiler software-pipelines: next block's weights load early
            for j in range(0, H // BLOCK_H):
                out = _chained_block(
                    h, out, j, w_pen_ptr, b_pen_ptr, w_last_ptr, hs, cs, H, BLOCK_H, C_PAD, dtype
                )
        else:  # unrolled
            for j in tl.static_range(H // BLOCK_H):
                out = _chained_block(
                    h, out, j, w_pen_ptr, b_pen_ptr, w_last_ptr, hs, cs, H, BLOCK_H, C_PAD, dtype
                )
    else:
        out = tl.dot(h, tl.load(w_last_ptr + hs[:, None] * C_PAD + cs[None, :]))
    out = out + tl.load(b_last_ptr + cs)[None, :]
    tl.store(
        out_ptr + rows[:, None] * stride_om + cs[None, :],
        out.to(out_ptr.dtype.element_ty),
        mask=row_ok[:, None] & (cs[None, :] < C),
    )


_tuned_kernel = triton.autotune(
    configs=_configs(),
    key=["F", "C", "NUM_MID", "CHAINED", "H", "C_PAD"],
    prune_configs_by={"early_config_prune": _prune},
)(fused_mlp_kernel)


def tuned_config() -> str | None:
    """The autotuner's pick for the last shape it tuned (for benchmark reports)."""
    best = getattr(_tuned_kernel, "best_config", None)
    return None if best is None else str(best)


def fused_mlp(
    packed: PackedMLP,
    x: torch.Tensor,
    out: torch.Tensor | None = None,
    config: dict | None = None,
) -> torch.Tensor:
    """``[N, F]`` features (any float dtype, unit stride along F) -> ``[N, C]`` logits.

    ``out`` (``[N, C]``, any float dtype) is written in place if given; fp32 otherwise.
    ``config`` fixes the meta-parameters (``BLOCK_M``, ``BLOCK_K``, ``BLOCK_H``,
    ``PIPELINED``, and optionally ``num_warps``/``num_stages``) instead of autotuning.
    """
    if x.dim() != 2 or x.size(1) != packed.in_channels or x.stride(1) != 1:
        raise ValueError(f"expected [N, {packed.in_channels}] features with unit column stride")
    n, c = x.size(0), packed.out_channels
    if out is None:
        out = torch.empty(n, c, device=x.device, dtype=torch.float32)
    h, c_pad = packed.hidden, packed.last.size(1)
    chained = packed.pen is not None
    num_mid = packed.mid.size(0) if packed.mid.dim() == 3 else 0
    grid = lambda meta: (triton.cdiv(n, meta["BLOCK_M"]),)  # noqa: E731
    kernel = _tuned_kernel if config is None else fused_mlp_kernel
    kernel[grid](
        x,
        out,
        packed.first,
        packed.first_bias,
        packed.mid,
        packed.mid_bias,
        packed.pen if chained else packed.first,
        packed.pen_bias if chained else packed.first_bias,
        packed.last,
        packed.last_bias,
        n,
        x.stride(0),
        out.stride(0),
        F=packed.in_channels,
        C=c,
        NUM_MID=num_mid,
        CHAINED=chained,
        H=h,
        C_PAD=c_pad,
        **(config or {}),
    )
    return out
