"""A Hopper-only student kernel that keeps the weights resident in shared memory (Gluon).

The Triton kernels of :mod:`g2m.serve.fused_mlp_triton` give each ``BLOCK_M``-row program its own
copy of every weight block, so over N rows the weights cross from L2 to the SMs
``N / BLOCK_M`` times: ~8.8 GB of L2 traffic for GLNN's products student (3 x 256, 2.45M
rows, ~224 KB of bf16 weights), which bounds those kernels at ~1.5 ms on an H100/H200.
Triton's ``tl.dot`` cannot say "keep this operand in shared memory across loop iterations";
Gluon (``triton.experimental.gluon``) can, because shared memory is allocated explicitly.

This kernel is *persistent*: one program per SM loads the three weight matrices into shared
memory once (``W_1`` ``[K1, H]``, ``W_2`` as ``H / HC`` column blocks ``[H, HC]``, ``W_3`` as
the matching row blocks ``[HC, C_pad]``; 224 KB of the 227 KB an H100/H200 SM offers for
the products student), then loops over row tiles. Per tile, with the features read straight
into the registers of the matrix instruction's left operand (``wgmma`` takes ``A`` from
registers and ``B`` from shared memory),

.. math::
    h_1 = \\sigma(x W_1 + b_1), \\qquad
    z = b_3 + \\sum_j \\sigma(h_1 W_2[:, j] + b_2[j])\\, W_3[j, :],

where ``j`` runs over the ``HC``-wide column blocks of layer 2 (the same chaining as the
Triton kernel's, which keeps the fp32 accumulators small). The next tile's features are
loaded before the current tile's products, so their latency hides behind the tensor cores.

Biases are either held in registers across the loop or read from shared memory per tile
(``BIAS_SMEM``): the first makes a 128-row tile spill, the second costs shared-memory reads,
and neither is faster everywhere, so :data:`CONFIGS` holds both and the fastest is timed on
the first call. On an H200 this ran GLNN's products student in 1.10-1.30 ms, against
1.43-1.53 ms for the TMA kernel beside it (experiments/gpu_scale/README.md, section 6).

Only the 3-layer shape (one hidden-to-hidden layer) is implemented; :func:`supported` says
whether a packed student fits, and :func:`g2m.serve.fused_mlp_triton.fused_mlp` falls back to the
Triton kernels otherwise. Compute capability 9.x only: ``wgmma`` does not exist elsewhere.
Gluon has no interpreter, so its results are checked on the GPU alone
(``tests/test_fused_mlp.py``, ``-m gpu``); a CPU test compiles it for sm_90 with Triton's own
ptxas (wgmma emitted, shared memory within the limit), so CI catches a kernel that no longer
builds.
"""

from __future__ import annotations

import functools

import torch
from triton.experimental import gluon
from triton.experimental.gluon import language as gl
from triton.experimental.gluon.language.nvidia.hopper import fence_async_shared, warpgroup_mma

from g2m.serve.fused_mlp import PackedMLP

# an H100/H200 SM offers 227 KB of shared memory to one block (cudaFuncAttribute max)
SHARED_MEMORY_BYTES = 232_448
# BIAS_SMEM: biases read from shared memory per tile (no registers held across the loop) or
# held in registers (fewer shared-memory reads, but the 128-row tile then spills ~32 values)
CONFIGS = [
    {"BLOCK_M": 128, "HC": 128, "num_warps": 8, "BIAS_SMEM": False},
    {"BLOCK_M": 128, "HC": 128, "num_warps": 8, "BIAS_SMEM": True},
    {"BLOCK_M": 128, "HC": 256, "num_warps": 8, "BIAS_SMEM": True},
    {"BLOCK_M": 128, "HC": 256, "num_warps": 8, "BIAS_SMEM": False},
]
DEFAULT_CONFIG = CONFIGS[0]


def shared_bytes(packed: PackedMLP) -> int:
    """Shared memory the resident weights (bf16) and biases (fp32) take."""
    h, c_pad = packed.hidden, packed.last.size(1)
    return 2 * (packed.first.size(0) * h + h * h + h * c_pad) + 4 * (2 * h + c_pad)


def supported(packed: PackedMLP, device: torch.device) -> bool:
    """3 layers, bf16 weights that fit in shared memory, on a Hopper GPU (capability 9.x)."""
    k1 = packed.first.size(0)
    return (
        device.type == "cuda"
        and torch.cuda.get_device_capability(device)[0] == 9
        and packed.num_mid == 0
        and packed.pen is not None
        and packed.first.dtype == torch.bfloat16
        and k1 & (k1 - 1) == 0  # a power of two: Gluon's tensors are
        and shared_bytes(packed) <= SHARED_MEMORY_BYTES
    )


@gluon.jit
def _load_block(
    ptr, row0, col0, stride, ROWS: gl.constexpr, COLS: gl.constexpr, layout: gl.constexpr
):
    """The ``[ROWS, COLS]`` block at ``(row0, col0)`` of a row-major matrix, in ``layout``."""
    rows = row0 + gl.arange(0, ROWS, layout=gl.SliceLayout(1, layout))
    cols = col0 + gl.arange(0, COLS, layout=gl.SliceLayout(0, layout))
    return gl.load(ptr + rows[:, None] * stride + cols[None, :])


@gluon.jit
def _load_vector(ptr, start, SIZE: gl.constexpr, layout: gl.constexpr):
    """``ptr[start : start + SIZE]`` in a 1-D slice of ``layout``."""
    return gl.load(ptr + start + gl.arange(0, SIZE, layout=gl.SliceLayout(0, layout)))


@gluon.jit
def _broadcast_rows(vector_s, ROWS: gl.constexpr, layout: gl.constexpr):
    """A ``[ROWS, len]`` tensor in ``layout`` whose every row is the shared vector."""
    vector = vector_s.load(gl.SliceLayout(0, layout))
    return gl.zeros([ROWS, vector.shape[0]], gl.float32, layout) + vector[None, :]


@gluon.jit
def _load_rows(
    x_ptr,
    tile,
    M,
    stride_xm,
    F: gl.constexpr,
    BLOCK_M: gl.constexpr,
    K1: gl.constexpr,
    layout: gl.constexpr,
):
    """Feature tile ``tile`` (``[BLOCK_M, K1]``, zero past row M and column F), in ``layout``."""
    rows = tile * BLOCK_M + gl.arange(0, BLOCK_M, layout=gl.SliceLayout(1, layout))
    cols = gl.arange(0, K1, layout=gl.SliceLayout(0, layout))
    mask = (rows < M)[:, None] & (cols < F)[None, :]
    return gl.load(
        x_ptr + rows.to(gl.int64)[:, None] * stride_xm + cols[None, :], mask=mask, other=0.0
    )


@gluon.jit
def resident_mlp3_kernel(
    x_ptr, out_ptr, w1_ptr, b1_ptr, w2_ptr, b2_ptr, w3_ptr, b3_ptr,
    M, stride_xm, stride_om,
    F: gl.constexpr, C: gl.constexpr, K1: gl.constexpr, H: gl.constexpr, C_PAD: gl.constexpr,
    HC: gl.constexpr, BLOCK_M: gl.constexpr, BIAS_SMEM: gl.constexpr,
    acc_h: gl.constexpr, acc_c: gl.constexpr, acc_o: gl.constexpr, load_layout: gl.constexpr,
    w1_layout: gl.constexpr, w2_layout: gl.constexpr, w3_layout: gl.constexpr,
):  # fmt: skip
    """``w1`` [K1, H], ``w2`` [H, H], ``w3`` [H, C_PAD]: row-major bf16; biases fp32."""
    dtype: gl.constexpr = gl.bfloat16
    NCH: gl.constexpr = H // HC
    a_h: gl.constexpr = gl.DotOperandLayout(operand_index=0, parent=acc_h, k_width=2)
    a_c: gl.constexpr = gl.DotOperandLayout(operand_index=0, parent=acc_c, k_width=2)
    a_o: gl.constexpr = gl.DotOperandLayout(operand_index=0, parent=acc_o, k_width=2)

    # the weights (and biases), once per program
    w1_s = gl.allocate_shared_memory(
        dtype, [K1, H], w1_layout, _load_block(w1_ptr, 0, 0, H, K1, H, load_layout)
    )
    w2_s = gl.allocate_shared_memory(dtype, [NCH, H, HC], w2_layout)
    w3_s = gl.allocate_shared_memory(dtype, [NCH, HC, C_PAD], w3_layout)
    for j in gl.static_range(NCH):
        w2_s.index(j).store(_load_block(w2_ptr, 0, j * HC, H, H, HC, load_layout))
        w3_s.index(j).store(_load_block(w3_ptr, j * HC, 0, C_PAD, HC, C_PAD, load_layout))
    if BIAS_SMEM:  # 2.3 KB of the ~3 KB left; no registers held across the loop
        vector: gl.constexpr = gl.SwizzledSharedLayout(1, 1, 1, [0])
        b1_s = gl.allocate_shared_memory(
            gl.float32, [H], vector, _load_vector(b1_ptr, 0, H, load_layout)
        )
        b2_s = gl.allocate_shared_memory(
            gl.float32, [H], vector, _load_vector(b2_ptr, 0, H, load_layout)
        )
        b3_s = gl.allocate_shared_memory(
            gl.float32, [C_PAD], vector, _load_vector(b3_ptr, 0, C_PAD, load_layout)
        )
    else:  # in registers for the whole loop: 64 + 16 of the 255 a thread has
        b1 = _load_vector(b1_ptr, 0, H, acc_h)
        b3 = _load_vector(b3_ptr, 0, C_PAD, acc_o)
    fence_async_shared()  # generic-proxy stores, then reads by the matrix instructions
    gl.thread_barrier()

    ocols = gl.arange(0, C_PAD, layout=gl.SliceLayout(0, acc_o))
    pid = gl.program_id(0)
    nprog = gl.num_programs(0)
    num_tiles = gl.cdiv(M, BLOCK_M)
    x = _load_rows(x_ptr, pid, M, stride_xm, F, BLOCK_M, K1, a_h)
    for tile in range(pid, num_tiles, nprog):
        a = x.to(dtype)
        x = _load_rows(x_ptr, tile + nprog, M, stride_xm, F, BLOCK_M, K1, a_h)  # prefetch
        if BIAS_SMEM:  # each product starts from its bias: acc = b + a @ W
            acc = warpgroup_mma(a, w1_s, _broadcast_rows(b1_s, BLOCK_M, acc_h))
            out = _broadcast_rows(b3_s, BLOCK_M, acc_o)
        else:
            acc = gl.zeros([BLOCK_M, H], gl.float32, acc_h)
            acc = warpgroup_mma(a, w1_s, acc, use_acc=False) + b1[None, :]
            out = gl.zeros([BLOCK_M, C_PAD], gl.float32, acc_o) + b3[None, :]
        h1 = gl.convert_layout(gl.maximum(acc, 0.0).to(dtype), a_c)
        for j in gl.static_range(NCH):
            if BIAS_SMEM:
                acc2 = _broadcast_rows(b2_s.slice(j * HC, HC), BLOCK_M, acc_c)
                acc2 = warpgroup_mma(h1, w2_s.index(j), acc2)
            else:
                acc2 = gl.zeros([BLOCK_M, HC], gl.float32, acc_c)
                acc2 = warpgroup_mma(h1, w2_s.index(j), acc2, use_acc=False)
                acc2 = acc2 + _load_vector(b2_ptr, j * HC, HC, acc_c)[None, :]
            h2 = gl.convert_layout(gl.maximum(acc2, 0.0).to(dtype), a_o)
            out = warpgroup_mma(h2, w3_s.index(j), out)
        rows = tile * BLOCK_M + gl.arange(0, BLOCK_M, layout=gl.SliceLayout(1, acc_o))
        mask = (rows < M)[:, None] & (ocols < C)[None, :]
        offsets = rows.to(gl.int64)[:, None] * stride_om + ocols[None, :]
        gl.store(out_ptr + offsets, out.to(out_ptr.dtype.element_ty), mask=mask)


def _mma_layout(num_warps: int, n: int) -> gl.NVMMADistributedLayout:
    """A ``wgmma`` accumulator layout: warps stacked along the rows, ``n``-wide instructions."""
    return gl.NVMMADistributedLayout(
        version=[3, 0], warps_per_cta=[num_warps, 1], instr_shape=[16, n, 16]
    )


def _programs(device: torch.device, tiles: int) -> int:
    """One program per SM, or one per tile where there are fewer tiles."""
    sms = torch.cuda.get_device_properties(device).multi_processor_count  # cached by torch
    return max(1, min(tiles, sms))


def kernel_constants(f: int, c: int, k1: int, h: int, c_pad: int, cfg: dict) -> dict:
    """The compile-time arguments of :func:`resident_mlp3_kernel` for a shape and config.

    ``f``/``c`` features and classes, ``k1``/``c_pad`` their padded widths, ``h`` the hidden
    width (the packed student's ``first.size(0)``, ``last.size(1)``, ``hidden``). Built once
    per shape and config (the layout objects would otherwise be rebuilt on every call).
    """
    key = (cfg["BLOCK_M"], cfg["HC"], cfg["num_warps"], cfg["BIAS_SMEM"])
    return dict(_constants(f, c, k1, h, c_pad, *key))


@functools.lru_cache(maxsize=64)
def _constants(
    f: int, c: int, k1: int, h: int, c_pad: int, block_m: int, hc: int, warps: int, bias: bool
) -> dict:
    hc = min(hc, h)
    if block_m != 16 * warps or h % hc:
        raise ValueError(
            f"need BLOCK_M = 16 * num_warps and HC dividing {h}, got BLOCK_M={block_m}, "
            f"HC={hc}, num_warps={warps}"
        )
    bf16 = gl.bfloat16
    return dict(
        F=f, C=c, K1=k1, H=h, C_PAD=c_pad, HC=hc, BLOCK_M=block_m, BIAS_SMEM=bias,
        acc_h=_mma_layout(warps, h), acc_c=_mma_layout(warps, hc), acc_o=_mma_layout(warps, c_pad),
        load_layout=gl.BlockedLayout([1, 8], [4, 8], [warps, 1], [1, 0]),
        w1_layout=gl.NVMMASharedLayout.get_default_for([k1, h], bf16),
        w2_layout=gl.NVMMASharedLayout.get_default_for([h, hc], bf16),
        w3_layout=gl.NVMMASharedLayout.get_default_for([hc, c_pad], bf16),
    )  # fmt: skip


def _launch(packed: PackedMLP, x: torch.Tensor, out: torch.Tensor, cfg: dict) -> None:
    k1, c_pad = packed.first.size(0), packed.last.size(1)
    constants = kernel_constants(
        packed.in_channels, packed.out_channels, k1, packed.hidden, c_pad, cfg
    )
    n = x.size(0)
    resident_mlp3_kernel[(_programs(x.device, -(-n // cfg["BLOCK_M"])),)](
        x, out, packed.first, packed.first_bias, packed.pen, packed.pen_bias,
        packed.last, packed.last_bias, n, x.stride(0), out.stride(0),
        **constants, num_warps=cfg["num_warps"],
    )  # fmt: skip


# the fastest of CONFIGS per (device, feature dtype, rows bucket, shape), timed once
_TUNED: dict[tuple, dict] = {}
_LAST: list[dict] = []


def _autotune(packed: PackedMLP, x: torch.Tensor, out: torch.Tensor) -> dict:
    from triton.testing import do_bench

    times = []
    for cfg in CONFIGS:
        _launch(packed, x, out, cfg)  # compiles
        times.append(do_bench(lambda cfg=cfg: _launch(packed, x, out, cfg), warmup=5, rep=25))
    return CONFIGS[min(range(len(CONFIGS)), key=times.__getitem__)]


def tuned_config() -> dict | None:
    """The configuration of the last autotuned call (for benchmark reports)."""
    return _LAST[-1] if _LAST else None


def resident_mlp(
    packed: PackedMLP, x: torch.Tensor, out: torch.Tensor, config: dict | None = None
) -> torch.Tensor:
    """``out[:] = student(x)`` with the resident-weight kernel (check :func:`supported` first).

    ``config``: ``BLOCK_M`` (16 per warp), ``HC`` (layer-2 column block, divides H),
    ``num_warps`` and ``BIAS_SMEM``; if None, the fastest of :data:`CONFIGS` for this device,
    feature dtype, shape and power-of-two bucket of rows, timed on the first call in each
    (like ``triton.autotune``).
    """
    if config is None:
        rows = x.size(0).bit_length()  # a power-of-two bucket: 10 rows and 2.45M differ
        key = (x.device, x.dtype, rows, packed.in_channels, packed.out_channels, packed.hidden)
        if key not in _TUNED:
            _TUNED[key] = _autotune(packed, x, out)
        config = _TUNED[key]
        _LAST[:] = [config]
    _launch(packed, x, out, DEFAULT_CONFIG | config)
    return out
