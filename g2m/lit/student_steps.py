"""A student stage whose speed is set by the GPU, not by the host.

A student step is small: on ogbn-products' size one batch of 4096 nodes through a 3 x 256
MLP is well under a millisecond of GPU work, while Lightning's per-step machinery, Python and
the kernel launches cost several milliseconds of host time (experiments/gpu_scale). Two
things take that host time off the step, without touching what a step computes:

- **Several batches per Lightning step** (``steps_per_call=K``): the loader hands the system
  K batches at once (:class:`StepGroups`) and the system runs K optimiser steps itself
  (manual optimisation): zero the gradients, forward, backward, step, for each batch in
  order — the same steps, in the same order, with the same random draws, as K Lightning
  steps (on the CPU the metrics are identical; ``tests/test_student_steps.py``). Lightning's
  per-step bookkeeping (hooks, logging, progress) runs once per K batches. Epochs, the
  shuffling, checkpoints at epoch ends, selection and early stopping are unchanged.
- **CUDA graphs** (``cuda_graph=true``, on a GPU, one device): :class:`GraphedStep` records
  one whole training step — gathering the batch's rows, forward, loss, backward and the
  Adam update (``capturable``) — once, and replays it for every full-size batch after, so a
  step costs one copy of the batch's ids and one graph launch. Dropout draws fresh masks on
  every replay (PyTorch's graph-safe generator); the epoch's last, shorter batch runs
  eagerly. Objectives that look at neighbours (``needs_edges``) have batches of varying
  shape and run eagerly.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import torch
from torch import Tensor

WARMUP_STEPS = 3  # eager steps on a side stream before capture, as CUDA graphs need


class StepGroups:
    """Groups the batches of ``batches`` (a :class:`~g2m.lit.loaders.NodeBatches`) into
    lists of up to ``size``: one list per Lightning step."""

    def __init__(self, batches: Any, size: int):
        self.batches, self.size = batches, size

    def __len__(self) -> int:
        return -(-len(self.batches) // self.size)

    def __iter__(self) -> Iterator[list[Tensor]]:
        group: list[Tensor] = []
        for batch in self.batches:
            group.append(batch)
            if len(group) == self.size:
                yield group
                group = []
        if group:
            yield group


class GraphedStep:
    """One training step of a fixed batch size, captured as a CUDA graph and replayed.

    Args:
        loss_of: ``loss_of(idx) -> (loss, terms)``: the step's loss for node ids ``idx``
            (only tensor operations on the device: no host synchronisation, fixed shapes).
        parameters: what the optimiser updates (their gradients are the graph's own).
        optimizer: a ``torch.optim`` optimiser created with ``capturable=True``.
        autocast_dtype: the mixed-precision dtype of the forward pass (None: fp32).

    :meth:`step` runs the first :data:`WARMUP_STEPS` calls eagerly on a side stream, then
    captures; every later call copies ``idx`` into the graph's input and replays it.
    """

    def __init__(
        self,
        loss_of: Callable[[Tensor], tuple[Tensor, dict[str, Tensor]]],
        parameters: list[torch.nn.Parameter],
        optimizer: torch.optim.Optimizer,
        autocast_dtype: torch.dtype | None,
    ):
        self.loss_of, self.parameters, self.optimizer = loss_of, parameters, optimizer
        self.autocast_dtype = autocast_dtype
        self.graph: torch.cuda.CUDAGraph | None = None
        self.static_idx: Tensor | None = None
        self.calls = 0
        self.side = torch.cuda.Stream()

    def _run(self, idx: Tensor) -> Tensor:
        """Forward, backward and the optimiser step (``loss_of`` also adds the batch's
        terms to the epoch's sums, in place)."""
        with torch.autocast("cuda", enabled=False):
            with torch.autocast(
                "cuda",
                dtype=self.autocast_dtype or torch.float32,
                enabled=self.autocast_dtype is not None,
                cache_enabled=False,
            ):
                loss, _ = self.loss_of(idx)
            loss.backward()
        self.optimizer.step()
        return loss.detach()

    def step(self, idx: Tensor) -> Tensor:
        self.calls += 1
        if self.calls <= WARMUP_STEPS:
            self.side.wait_stream(torch.cuda.current_stream())
            with torch.cuda.stream(self.side):
                self.optimizer.zero_grad(set_to_none=True)
                loss = self._run(idx)
            torch.cuda.current_stream().wait_stream(self.side)
            return loss
        if self.graph is None:
            self.static_idx = idx.clone()
            self.optimizer.zero_grad(set_to_none=True)  # the graph's backward owns the grads
            self.graph = torch.cuda.CUDAGraph()
            with torch.cuda.graph(self.graph):
                self.static_loss = self._run(self.static_idx)
        self.static_idx.copy_(idx)
        self.graph.replay()
        return self.static_loss

    def eager(self, idx: Tensor) -> Tensor:
        """A step of another batch size (the epoch's last), outside the graph."""
        for p in self.parameters:
            if p.grad is not None:
                p.grad.zero_()  # in place: the captured step keeps reading these tensors
        return self._run(idx)
