"""Fast inference with a trained student: one object, three interchangeable back-ends.

================  ==========================================================================
``eager``         the :class:`MLPStudent` itself, cast to ``dtype`` (fp32 on CPU by default)
``compile``       ``torch.compile`` of the same module (Inductor fuses bias and activation)
``fused``         one Triton kernel for the whole MLP (:mod:`g2m.serve.fused_mlp`); CUDA only
================  ==========================================================================

``backend="auto"`` picks ``fused`` in bf16 on a CUDA device where Triton is installed and the
student is a shape the kernel covers (:func:`fused_supported`), else ``eager`` (bf16 on GPU,
fp32 on CPU); ``backend="fused"`` on any other shape is refused with a :class:`ConfigError`.
All back-ends compute the same function; ``python -m g2m.bench`` times them against the
hardware floor.

The fused kernel covers exactly the students with

- ``num_layers >= 2`` (at least one hidden layer),
- ``hidden_channels <= 256`` (padded to a power of two, at least 64),
- ``norm`` ``none`` or ``batch`` (batch norm folded into its linear layer),
- ``residual=False``,

with features F and classes C padded, not limited (F to a multiple of 128, C to a power of
two >= 64). Of the shipped students that is ``student=mlp`` (128 wide, 2 layers; GLNN's
products MLP in ``tuned/student/synthetic-products_mlp.yaml``, 256 wide, 3 layers, batch
norm, too). ``student=mlpw4`` (512) and ``mlpw8`` (1024) are too
wide, ``student=mlp-res`` has layer norm and skips: ``auto`` serves them ``eager``, and
``backend="compile"`` runs them through ``torch.compile``.

``cuda_graph=True`` (CUDA only) records each back-end's launches for an input once in a CUDA
graph and replays it on later calls with the same tensor, so the host's per-call work
(Python, argument checks, Triton's launcher) leaves the critical path: on an H200 that work
is 0.05-0.2 ms per call, up to a fifth of the fused kernel's own time over ogbn-products'
2.45M nodes (experiments/gpu_scale/README.md, section 7). Like ``torch.compile``'s
``mode="reduce-overhead"``, a replay writes the same output tensor each time.
"""

from __future__ import annotations

import copy
from collections import OrderedDict

import torch
from torch import Tensor

from g2m.errors import ConfigError
from g2m.models.student import MLPStudent

BACKENDS = ("auto", "eager", "compile", "fused")
MAX_GRAPHS = 8  # captured inputs kept per engine (each holds its own [N, C] output)


def triton_available() -> bool:
    try:
        import triton  # noqa: F401
    except ImportError:
        return False
    return True


def fused_supported(student: MLPStudent) -> bool:
    """Whether the fused kernel covers ``student`` (the shapes listed above)."""
    from g2m.serve.fused_mlp import MAX_HIDDEN

    args = student.init_args
    return (
        args["num_layers"] >= 2
        and args["norm"] in ("none", "batch")
        and not args["residual"]
        and args["hidden_channels"] <= MAX_HIDDEN
    )


def auto_backend(student: MLPStudent, device: torch.device) -> str:
    """What ``backend="auto"`` runs ``student`` with on ``device``: ``fused`` or ``eager``."""
    fused_ok = device.type == "cuda" and triton_available() and fused_supported(student)
    return "fused" if fused_ok else "eager"


class StudentInference:
    """An inference-only student on ``device``: ``predict(x)`` gives ``[N, C]`` logits.

    Args:
        student: a trained student (its weights are copied, the original is left as is).
        device: where inference runs.
        backend: one of ``auto``, ``eager``, ``compile``, ``fused``.
        dtype: operand dtype; default bf16 on CUDA, fp32 on CPU. Accumulation is fp32 in
            the fused kernel and in cuBLAS.
        cuda_graph: replay a CUDA graph per input tensor (same storage, shape, strides and
            dtype) instead of launching kernels from Python on every call. The first call
            with a tensor runs eagerly (compiling and autotuning), the second captures, the
            later ones replay: the graph reads the tensor's memory as it is at replay time,
            and returns the *same* logits tensor each time, overwritten by the next call with
            that input (``.clone()`` what must outlive it). The last
            :data:`MAX_GRAPHS` inputs keep their graphs.
    """

    def __init__(
        self,
        student: MLPStudent,
        device: str | torch.device = "cpu",
        backend: str = "auto",
        dtype: torch.dtype | None = None,
        cuda_graph: bool = False,
    ):
        self.device = torch.device(device)
        cuda = self.device.type == "cuda"
        if cuda and self.device.index is None:  # "cuda" means the current device: name it
            self.device = torch.device("cuda", torch.cuda.current_device())
        self.dtype = dtype or (torch.bfloat16 if cuda else torch.float32)
        if backend not in BACKENDS:
            raise ConfigError(f"backend must be one of {BACKENDS}, got '{backend}'.")
        if backend == "auto":
            backend = auto_backend(student, self.device)
        if backend == "fused" and not cuda:
            raise ConfigError("the fused back-end needs a CUDA device.")
        if cuda_graph and not cuda:
            raise ConfigError("cuda_graph=True needs a CUDA device; leave it off on the CPU.")
        self.backend = backend
        self.cuda_graph = cuda_graph
        self._graphs: OrderedDict[tuple, tuple | None] = OrderedDict()
        self.student_args = dict(student.init_args)
        model = copy.deepcopy(student).eval().to(self.device)
        if backend == "fused":
            from g2m.serve.fused_mlp import PackedMLP
            from g2m.serve.fused_mlp_triton import auto_kernel

            self.packed = PackedMLP.from_student(model, self.dtype)
            self.kernel = auto_kernel(self.packed, self.device)  # decided once, not per call
            self.model = None
        else:
            self.model = model.to(self.dtype)
            if backend == "compile":
                self.model = torch.compile(self.model, dynamic=False)

    @torch.no_grad()
    def predict(self, x: Tensor) -> Tensor:
        """Logits for ``[N, F]`` features already on the device (any float dtype)."""
        if self.cuda_graph:
            return self._replay(x)
        return self._forward(x)

    __call__ = predict

    def _forward(self, x: Tensor) -> Tensor:
        if self.backend == "fused":
            from g2m.serve.fused_mlp_triton import fused_mlp

            return fused_mlp(self.packed, x, kernel=self.kernel)
        return self.model(x.to(self.dtype))

    def _replay(self, x: Tensor) -> Tensor:
        """Eager on an input's first call, capture on its second, replay from then on."""
        if x.device != self.device:
            raise ConfigError(
                f"cuda_graph=True needs the features on {self.device}, not {x.device}."
            )
        key = (x.data_ptr(), tuple(x.shape), x.stride(), x.dtype)
        if key not in self._graphs:  # warm-up: compiles, autotunes, settles the allocator
            self._graphs[key] = None
            if len(self._graphs) > MAX_GRAPHS:
                self._graphs.popitem(last=False)
            return self._forward(x)
        self._graphs.move_to_end(key)
        if self._graphs[key] is None:
            graph = torch.cuda.CUDAGraph()
            torch.cuda.synchronize(self.device)
            with torch.cuda.device(self.device), torch.cuda.graph(graph):
                out = self._forward(x)
            self._graphs[key] = (graph, out)
        graph, out = self._graphs[key]
        graph.replay()
        return out
