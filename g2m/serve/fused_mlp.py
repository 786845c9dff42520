"""Fused inference for the MLP student: the whole network in one Triton kernel.

An MLP over N nodes is cheap in FLOPs but an unfused forward writes every hidden layer
(``[N, H]``) to GPU memory and reads it back; at ogbn-products size (N = 2.45M, H = 256)
that traffic alone (~5 GB in bf16) costs more than the matrix products. Here each program
takes a tile of ``BLOCK_M`` rows through every layer on chip, so features are read once
and logits written once. With :math:`\\sigma` = ReLU and :math:`W_l^\\top` stored
``[fan_in, fan_out]``,

.. math::
    h^{(1)} = \\sigma(x W_1^\\top + b_1), \\quad
    h^{(l)} = \\sigma(h^{(l-1)} W_l^\\top + b_l), \\quad
    z = b_L + \\sum_j \\sigma\\big(h^{(L-2)} W_{L-1}[j]^\\top + b_{L-1}[j]\\big)\\,
        W_L[:, j]^\\top,

where the last sum runs over column blocks ``j`` of layer ``L-1`` (``BLOCK_H`` wide): the
penultimate hidden layer is consumed block by block and never held whole. Widths are padded
with zeros to powers of two (a zero unit contributes ``relu(0) = 0``), batch norm in eval
mode is folded into the preceding linear layer, and dropout is the identity at inference.
Layer norm and residual students are refused (:func:`g2m.serve.inference.fused_supported`
lists the shapes covered; the engine serves the others eagerly).

Triton is imported lazily: the student itself stays torch-only (:mod:`g2m.models.student`).
Legend: N nodes, F features, H hidden width, C classes.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor, nn

from g2m.errors import ConfigError
from g2m.models.student import MLPStudent

K_PAD = 128  # feature rows of the first weight are padded to a multiple of the largest BLOCK_K
MAX_HIDDEN = 256  # wider layers would not fit a tile's registers
# narrower hidden and output blocks are padded up: on an H100 (Triton 3.6) products with a
# 16-wide output block gave wrong logits, the 64-wide ones are right (tests/test_fused_mlp.py)
MIN_WIDTH = 64


def next_power_of_two(n: int, least: int = 16) -> int:
    return max(least, 1 << (n - 1).bit_length())


def linear_layers(student: MLPStudent) -> list[tuple[Tensor, Tensor]]:
    """``(W [out, in], b [out])`` of every layer in eval mode, batch norm folded in.

    Batch norm (running statistics) after a linear layer is an affine map per unit:
    :math:`W' = \\mathrm{diag}(s) W`, :math:`b' = s (b - \\mu) + \\beta`,
    :math:`s = \\gamma / \\sqrt{\\sigma^2 + \\epsilon}`.
    """
    if student.init_args.get("residual"):  # the kernel has no skips: refuse, never drop them
        raise ConfigError("the fused MLP does not support residual=true students.")
    layers = []
    for block in student.hidden:
        linear, norm = block[0], block[1] if isinstance(block[1], nn.BatchNorm1d) else None
        if any(isinstance(m, nn.LayerNorm) for m in block):
            raise ConfigError("the fused MLP supports norm=none or norm=batch, not layer norm.")
        weight, bias = linear.weight.detach().float(), linear.bias.detach().float()
        if norm is not None:
            scale = norm.weight.detach().float() / torch.sqrt(norm.running_var.float() + norm.eps)
            weight = weight * scale[:, None]
            bias = scale * (bias - norm.running_mean.float()) + norm.bias.detach().float()
        layers.append((weight, bias))
    layers.append((student.out.weight.detach().float(), student.out.bias.detach().float()))
    return layers


def _padded_t(weight: Tensor, rows: int, cols: int, dtype: torch.dtype) -> Tensor:
    """``weight.T`` zero-padded to ``[rows, cols]``, contiguous, in ``dtype``."""
    out = torch.zeros(rows, cols, dtype=dtype, device=weight.device)
    out[: weight.size(1), : weight.size(0)] = weight.t()
    return out


def _padded(bias: Tensor, size: int) -> Tensor:
    out = torch.zeros(size, dtype=torch.float32, device=bias.device)
    out[: bias.numel()] = bias
    return out


@dataclass
class PackedMLP:
    """Padded, transposed weights in the layout the kernel reads.

    ``first`` is layer 1 (``[F_pad, H]``), ``mid`` stacks the full-width layers after it
    (``[L-3, H, H]``), ``pen`` is layer L-1 (``[H, H]``, None when L = 2) and ``last`` is
    layer L (``[H, C_pad]``). Biases are fp32.
    """

    first: Tensor
    first_bias: Tensor
    mid: Tensor
    mid_bias: Tensor
    pen: Tensor | None
    pen_bias: Tensor | None
    last: Tensor
    last_bias: Tensor
    in_channels: int
    out_channels: int

    @property
    def hidden(self) -> int:
        return self.first.size(1)

    @property
    def num_mid(self) -> int:
        """Full-width layers between layer 1 and layer L-1 (``mid`` is a placeholder if 0)."""
        return self.mid.size(0) if self.mid.dim() == 3 else 0

    @classmethod
    def from_student(cls, student: MLPStudent, dtype: torch.dtype = torch.bfloat16) -> PackedMLP:
        layers = linear_layers(student)
        if len(layers) < 2:
            raise ConfigError("the fused MLP needs at least one hidden layer (num_layers >= 2).")
        f, c = student.init_args["in_channels"], student.init_args["out_channels"]
        h = next_power_of_two(student.init_args["hidden_channels"], least=MIN_WIDTH)
        if h > MAX_HIDDEN:
            raise ConfigError(f"the fused MLP supports hidden widths up to {MAX_HIDDEN}.")
        f_pad, c_pad = -(-f // K_PAD) * K_PAD, next_power_of_two(c, least=MIN_WIDTH)
        (w1, b1), *middle, (wl, bl) = layers
        pen = middle.pop() if middle else None
        mid = [_padded_t(w, h, h, dtype) for w, _ in middle]
        return cls(
            first=_padded_t(w1, f_pad, h, dtype),
            first_bias=_padded(b1, h),
            mid=torch.stack(mid) if mid else torch.zeros(1, dtype=dtype, device=w1.device),
            mid_bias=torch.stack([_padded(b, h) for _, b in middle])
            if middle
            else torch.zeros(1, device=w1.device),
            pen=_padded_t(pen[0], h, h, dtype) if pen else None,
            pen_bias=_padded(pen[1], h) if pen else None,
            last=_padded_t(wl, h, c_pad, dtype),
            last_bias=_padded(bl, c_pad),
            in_channels=f,
            out_channels=c,
        )

    def reference(self, x: Tensor) -> Tensor:
        """The same computation in torch (fp32 accumulation), for checks on any device."""
        dtype = self.first.dtype
        f = self.in_channels

        def dense(h: Tensor, w: Tensor, b: Tensor) -> Tensor:
            return (h.to(dtype).float() @ w.float()) + b

        h = torch.relu(dense(x[:, :f], self.first[:f], self.first_bias)).to(dtype)
        for w, b in zip(self.mid if self.num_mid else [], self.mid_bias, strict=False):
            h = torch.relu(dense(h, w, b)).to(dtype)
        if self.pen is not None:
            h = torch.relu(dense(h, self.pen, self.pen_bias)).to(dtype)
        return dense(h, self.last, self.last_bias)[:, : self.out_channels]
