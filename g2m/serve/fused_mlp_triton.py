"""The Triton kernel behind :mod:`g2m.serve.fused_mlp` (imported only where Triton is installed).

One program computes ``BLOCK_M`` rows of the logits: layer 1 as a K-loop over feature
blocks, the full-width middle layers, then the last two layers chained over ``BLOCK_H``
column blocks (see :mod:`g2m.serve.fused_mlp` for the math). Accumulation is fp32; operands are
the packed weights' dtype (bf16 on GPU). The weight blocks are read one of two ways:

- ``tma`` (Hopper and newer, the default there): through tensor descriptors, so the TMA
  engine copies each block from L2 straight into shared memory, where the matrix
  instructions read it. Every program re-reads all weights (~230 KB in bf16 for GLNN's
  products student) for its ``BLOCK_M`` rows; pointer loads route those bytes through
  registers first. On an H200 this took the products-size student from 1.81 to 1.49 ms
  (``experiments/gpu_scale/fused_mlp_configs.py``; experiments/gpu_scale/README.md, section 5).
- ``pointer`` (any GPU Triton supports): plain ``tl.load`` of each block.

A third kernel, ``resident`` (:mod:`g2m.serve.fused_mlp_gluon`, Gluon, Hopper, 3-layer students),
loads the weights into shared memory once per SM instead; ``kernel="auto"`` prefers it where
it applies (:func:`auto_kernel`).

``TRITON_INTERPRET=1`` runs both on the CPU (fp16 or fp32 operands there: the interpreter
mis-reads bf16), which is how the tests check them.
"""

from __future__ import annotations

import os

import torch
import triton
import triton.language as tl

from g2m.serve.fused_mlp import PackedMLP

INTERPRETED = os.environ.get("TRITON_INTERPRET") == "1"
KERNELS = ("auto", "resident", "tma", "pointer")

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

# The same for the TMA path. No BLOCK_H below 64: on an H200 (Triton 3.6) (64, 128, 32, 4, 2)
# gave wrong logits (relative error 0.97) while the interpreter was right, like 16-wide
# output blocks of the pointer path (g2m.serve.fused_mlp.MIN_WIDTH).
TMA_CONFIGS = [
    (64, 128, 128, 4, 2, False),
    (64, 128, 128, 4, 3, False),
    (64, 128, 64, 4, 2, False),
    (64, 64, 64, 4, 2, False),
    (128, 128, 128, 8, 2, False),
    (128, 64, 128, 8, 2, False),
]


def _set_block_shapes(nargs: dict) -> None:
    """Give each descriptor the block shape of the config about to run (a pre-hook)."""
    if not nargs["TMA"]:
        return
    h, bk, bh, chained = nargs["H"], nargs["BLOCK_K"], nargs["BLOCK_H"], nargs["CHAINED"]
    nargs["w_first"].block_shape = [bk, h]
    if nargs["NUM_MID"]:
        nargs["w_mid"].block_shape = [h, h]
    if chained:
        nargs["w_pen"].block_shape = [h, bh]
    nargs["w_last"].block_shape = [bh if chained else h, nargs["C_PAD"]]


def _configs(table: list[tuple]) -> list[triton.Config]:
    if INTERPRETED:  # one config (the autotuner's timing needs a GPU); small tiles
        table = [(16, 32, 32, 4, 1, True)]
    return [
        triton.Config(
            {"BLOCK_M": bm, "BLOCK_K": bk, "BLOCK_H": bh, "PIPELINED": p},
            num_warps=w,
            num_stages=s,
            pre_hook=_set_block_shapes,
        )
        for bm, bk, bh, w, s, p in table
    ]


def _prune(configs: list[triton.Config], named_args: dict, **kwargs) -> list[triton.Config]:
    """Drop configs whose hidden block is wider than the hidden layer."""
    hidden = kwargs.get("H", named_args.get("H"))
    kept = [c for c in configs if c.kwargs["BLOCK_H"] <= hidden]
    return kept or [configs[0]]


@triton.jit
def _weights(w, row0, col0, stride, ROWS: tl.constexpr, COLS: tl.constexpr, TMA: tl.constexpr):
    """The ``[ROWS, COLS]`` block at ``(row0, col0)`` of a row-major weight matrix ``w``.

    ``w`` is a tensor descriptor whose block shape is ``[ROWS, COLS]`` (TMA) or a pointer to
    a matrix with row stride ``stride``.
    """
    if TMA:
        block = w.load([row0, col0])
    else:
        rows = row0 + tl.arange(0, ROWS)
        cols = col0 + tl.arange(0, COLS)
        block = tl.load(w + rows[:, None] * stride + cols[None, :])
    return block


@triton.jit
def _chained_block(h, out, j, w_pen, b_pen_ptr, w_last, H, BLOCK_H, C_PAD, TMA, dtype):
    """``out += relu(h @ W_pen[:, block j] + b) @ W_last[block j, :]`` for one hidden block."""
    js = j * BLOCK_H + tl.arange(0, BLOCK_H)
    a = tl.dot(h, _weights(w_pen, 0, j * BLOCK_H, H, H, BLOCK_H, TMA))
    a = tl.maximum(a + tl.load(b_pen_ptr + js)[None, :], 0.0).to(dtype)
    return tl.dot(a, _weights(w_last, j * BLOCK_H, 0, C_PAD, BLOCK_H, C_PAD, TMA), out)


@triton.jit
def fused_mlp_kernel(
    x_ptr,
    out_ptr,
    w_first,
    b_first_ptr,
    w_mid,
    b_mid_ptr,
    w_pen,
    b_pen_ptr,
    w_last,
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
    TMA: tl.constexpr,
):
    """Weights: ``w_first`` [F_pad, H], ``w_mid`` [NUM_MID * H, H] (stacked), ``w_pen``
    [H, H], ``w_last`` [H, C_PAD], row-major; descriptors when ``TMA``, else pointers."""
    rows = tl.program_id(0).to(tl.int64) * BLOCK_M + tl.arange(0, BLOCK_M)
    row_ok = rows < M
    hs = tl.arange(0, H)
    cs = tl.arange(0, C_PAD)
    if TMA:  # noqa: SIM108 (a constexpr branch: Triton compiles only the one taken)
        dtype = w_first.dtype
    else:
        dtype = w_first.dtype.element_ty

    # layer 1: [BLOCK_M, F] @ [F, H], one feature block at a time (weight rows are padded)
    acc = tl.zeros((BLOCK_M, H), dtype=tl.float32)
    for k0 in range(0, F, BLOCK_K):
        ks = k0 + tl.arange(0, BLOCK_K)
        x = tl.load(
            x_ptr + rows[:, None] * stride_xm + ks[None, :],
            mask=row_ok[:, None] & (ks[None, :] < F),
            other=0.0,
        )
        acc = tl.dot(x.to(dtype), _weights(w_first, k0, 0, H, BLOCK_K, H, TMA), acc)
    h = tl.maximum(acc + tl.load(b_first_ptr + hs)[None, :], 0.0).to(dtype)

    # full-width middle layers
    for layer in tl.static_range(NUM_MID):
        acc = tl.dot(h, _weights(w_mid, layer * H, 0, H, H, H, TMA))
        h = tl.maximum(acc + tl.load(b_mid_ptr + layer * H + hs)[None, :], 0.0).to(dtype)

    if CHAINED:  # layers L-1 and L, one block of layer L-1's units at a time
        out = tl.zeros((BLOCK_M, C_PAD), dtype=tl.float32)
        if PIPELINED:  # a loop the compiler software-pipelines: next block's weights load early
            for j in range(0, H // BLOCK_H):
                out = _chained_block(
                    h, out, j, w_pen, b_pen_ptr, w_last, H, BLOCK_H, C_PAD, TMA, dtype
                )
        else:  # unrolled
            for j in tl.static_range(H // BLOCK_H):
                out = _chained_block(
                    h, out, j, w_pen, b_pen_ptr, w_last, H, BLOCK_H, C_PAD, TMA, dtype
                )
    else:
        out = tl.dot(h, _weights(w_last, 0, 0, C_PAD, H, C_PAD, TMA))
    out = out + tl.load(b_last_ptr + cs)[None, :]
    tl.store(
        out_ptr + rows[:, None] * stride_om + cs[None, :],
        out.to(out_ptr.dtype.element_ty),
        mask=row_ok[:, None] & (cs[None, :] < C),
    )


def _autotuned(table: list[tuple]):
    return triton.autotune(
        configs=_configs(table),
        key=["F", "C", "NUM_MID", "CHAINED", "H", "C_PAD"],
        prune_configs_by={"early_config_prune": _prune},
    )(fused_mlp_kernel)


_TUNED = {"pointer": _autotuned(GPU_CONFIGS), "tma": _autotuned(TMA_CONFIGS)}


def tuned_config(kernel: str | None = None) -> str | None:
    """The autotuner's pick for the last shape it tuned (for benchmark reports): that of
    ``kernel`` (``resident``, ``tma`` or ``pointer``), or of ``tma`` then ``pointer`` if None."""
    if kernel == "resident":
        from g2m.serve.fused_mlp_gluon import tuned_config as resident_config

        best = resident_config()
        return None if best is None else str(best)
    for name in (kernel,) if kernel else ("tma", "pointer"):
        best = getattr(_TUNED[name], "best_config", None)
        if best is not None:
            return str(best)
    return None


def tma_supported(device: torch.device) -> bool:
    """Tensor-descriptor loads on the GPU: Hopper (compute capability 9.0) and newer."""
    return device.type == "cuda" and torch.cuda.get_device_capability(device) >= (9, 0)


def _weight_operands(packed: PackedMLP, tma: bool) -> tuple:
    """``(w_first, w_mid, w_pen, w_last)`` as the kernel takes them: pointers or descriptors.

    Descriptor block shapes are placeholders until a config is chosen (``_set_block_shapes``);
    an operand the model lacks gets an unused stand-in of its own.
    """
    chained = packed.pen is not None
    if not tma:
        return packed.first, packed.mid, packed.pen if chained else packed.first, packed.last
    from triton.tools.tensor_descriptor import TensorDescriptor

    def descriptor(weight: torch.Tensor, rows: int) -> TensorDescriptor:
        return TensorDescriptor.from_tensor(weight, [rows, weight.size(1)])

    return (
        descriptor(packed.first, 16),
        descriptor(packed.mid.reshape(-1, packed.hidden) if packed.num_mid else packed.last, 16),
        descriptor(packed.pen if chained else packed.last, 16),
        descriptor(packed.last, 16),
    )


def resident_supported(packed: PackedMLP, device: torch.device) -> bool:
    """Whether the weights-resident Gluon kernel runs this student here."""
    if INTERPRETED:
        return False
    try:
        from g2m.serve import fused_mlp_gluon
    except ImportError:  # a Triton without Gluon
        return False
    return fused_mlp_gluon.supported(packed, device)


def auto_kernel(packed: PackedMLP, device: torch.device) -> str:
    """What ``kernel="auto"`` runs: ``resident`` where it fits (Hopper, 3 layers), else
    ``tma`` on Hopper and newer, else ``pointer`` (always ``pointer`` in the interpreter).

    On an H200 the resident kernel ran GLNN's products student in 1.10-1.30 ms, the TMA
    kernel in 1.43-1.53 ms (experiments/gpu_scale/README.md, section 6).
    """
    if resident_supported(packed, device):
        return "resident"
    return "tma" if not INTERPRETED and tma_supported(device) else "pointer"


def _resident(packed: PackedMLP, x: torch.Tensor, out: torch.Tensor, config: dict | None):
    """The weights-resident Gluon kernel (:mod:`g2m.serve.fused_mlp_gluon`), or a clear refusal."""
    try:
        from g2m.serve import fused_mlp_gluon
    except ImportError as err:  # a Triton without Gluon
        raise ValueError(f"kernel='resident' needs Triton's Gluon ({err})") from err
    if not resident_supported(packed, x.device):
        raise ValueError(
            "kernel='resident' needs a Hopper GPU (compute capability 9.x), a 3-layer student "
            f"and bf16 weights within {fused_mlp_gluon.SHARED_MEMORY_BYTES} bytes of shared "
            f"memory (these take {fused_mlp_gluon.shared_bytes(packed)}); use 'tma' or 'pointer'"
        )
    return fused_mlp_gluon.resident_mlp(packed, x, out, config)


def fused_mlp(
    packed: PackedMLP,
    x: torch.Tensor,
    out: torch.Tensor | None = None,
    config: dict | None = None,
    kernel: str = "auto",
) -> torch.Tensor:
    """``[N, F]`` features (any float dtype, unit stride along F) -> ``[N, C]`` logits.

    ``out`` (``[N, C]``, any float dtype) is written in place if given; fp32 otherwise.
    ``kernel`` picks how weights are read: ``resident`` (kept in shared memory by a
    persistent Gluon kernel; Hopper, 3-layer students), ``tma``, ``pointer`` or ``auto``
    (:func:`auto_kernel`). ``config`` fixes the
    meta-parameters (``BLOCK_M``, ``BLOCK_K``, ``BLOCK_H``, ``PIPELINED``, and optionally
    ``num_warps``/``num_stages``) instead of autotuning.
    """
    if x.dim() != 2 or x.size(1) != packed.in_channels or x.stride(1) != 1:
        raise ValueError(f"expected [N, {packed.in_channels}] features with unit column stride")
    if kernel not in KERNELS:
        raise ValueError(f"kernel must be one of {KERNELS}, got '{kernel}'")
    if kernel == "auto":
        kernel = auto_kernel(packed, x.device)
    n, c = x.size(0), packed.out_channels
    if out is None:
        out = torch.empty(n, c, device=x.device, dtype=torch.float32)
    if kernel == "resident":
        return _resident(packed, x, out, config)
    chained = packed.pen is not None
    w_first, w_mid, w_pen, w_last = _weight_operands(packed, kernel == "tma")
    args = dict(F=packed.in_channels, C=c, NUM_MID=packed.num_mid, CHAINED=chained)
    args |= dict(H=packed.hidden, C_PAD=packed.last.size(1), TMA=kernel == "tma")
    if config is None:
        launch = _TUNED[kernel]
    else:
        launch, args = fused_mlp_kernel, args | {"PIPELINED": False} | config
        _set_block_shapes(dict(w_first=w_first, w_mid=w_mid, w_pen=w_pen, w_last=w_last) | args)
    grid = lambda meta: (triton.cdiv(n, meta["BLOCK_M"]),)  # noqa: E731
    launch[grid](
        x,
        out,
        w_first,
        packed.first_bias,
        w_mid,
        packed.mid_bias,
        w_pen,
        packed.pen_bias if chained else packed.first_bias,
        w_last,
        packed.last_bias,
        n,
        x.stride(0),
        out.stride(0),
        **args,
    )
    return out
