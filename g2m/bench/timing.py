"""Timing on CPU and GPU, and the two hardware ceilings a benchmark is judged against.

GPU work is asynchronous: GPU regions are timed with CUDA events (after warm-up), CPU
regions with ``time.perf_counter``; every figure is a median over repeats. The ceilings are
measured in the same process as the figures they bound:

- memory bandwidth: a large device-to-device copy, counting bytes read plus bytes written;
- matrix rate: a large square matrix product on random data
  (:math:`2 n^3` FLOP; bf16 on GPU, fp32 on CPU).
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable

import torch


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


@torch.no_grad()
def median_ms(
    fn: Callable[[], object],
    device: str | torch.device = "cpu",
    repeats: int = 5,
    warmup: int = 1,
) -> float:
    """Median time of ``fn()`` in milliseconds on ``device`` (CUDA events on GPU)."""
    device = torch.device(device)
    for _ in range(warmup):
        fn()
    _sync(device)
    times = []
    for _ in range(repeats):
        if device.type == "cuda":
            start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            start.record()
            fn()
            end.record()
            end.synchronize()
            times.append(start.elapsed_time(end))
        else:
            begin = time.perf_counter()
            fn()
            times.append((time.perf_counter() - begin) * 1e3)
    return statistics.median(times)


def median_milliseconds(fn: Callable[[], object], repeats: int = 5, warmup: int = 1) -> float:
    """Median wall time of ``fn()`` in ms, synchronising CUDA around each call if present."""
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    for _ in range(warmup):
        with torch.no_grad():
            fn()
    times = []
    for _ in range(repeats):
        _sync(device)
        begin = time.perf_counter()
        with torch.no_grad():
            fn()
        _sync(device)
        times.append((time.perf_counter() - begin) * 1e3)
    return statistics.median(times)


def copy_bandwidth(device: str | torch.device, nbytes: int, repeats: int = 10) -> float:
    """Bytes/s of a ``nbytes`` copy on ``device``, counting the read and the write."""
    src = torch.randint(0, 255, (nbytes,), dtype=torch.uint8, device=device)
    dst = torch.empty_like(src)
    ms = median_ms(lambda: dst.copy_(src), device, repeats=repeats, warmup=2)
    return 2 * nbytes / (ms * 1e-3)


def matmul_rate(
    device: str | torch.device, size: int, dtype: torch.dtype, repeats: int = 10
) -> float:
    """FLOP/s of a ``size``-cubed matrix product in ``dtype`` on random data."""
    a = torch.randn(size, size, device=device, dtype=dtype)
    b = torch.randn(size, size, device=device, dtype=dtype)
    ms = median_ms(lambda: a @ b, device, repeats=repeats, warmup=2)
    return 2 * size**3 / (ms * 1e-3)
