"""The student: a plain MLP over node features. Torch only — this is what ships.

GLNN (Zhang et al., ICLR 2022) distils a GNN into an MLP

.. math::
    h^{(0)} = x_i,\\quad
    h^{(l)} = \\mathrm{Dropout}(\\sigma(\\mathrm{Norm}(W^{(l)} h^{(l-1)} + b^{(l)}))),\\quad
    z_i = W^{(L)} h^{(L-1)} + b^{(L)},

which needs no graph at inference. With ``residual=True`` every hidden layer whose input
and output widths match (all but the first, unless :math:`F = H`) adds its input back, as in
ResNet (He et al., CVPR 2016):

.. math::
    h^{(l)} = h^{(l-1)} + \\mathrm{Dropout}(\\sigma(\\mathrm{Norm}(W^{(l)} h^{(l-1)} + b^{(l)}))).

GLNN's wider students (MLPw4, MLPw8: Sec. 5, Table 3) are this MLP with a wider ``H``
(``student=mlpw4``, ``student=mlpw8``). ``forward(x, return_embedding=True)`` also returns the
last hidden layer :math:`h^{(L-1)}` (used by objectives that match representations).
"""

from __future__ import annotations

from torch import Tensor, nn

from g2m.errors import ConfigError

NORMS = {"none": None, "batch": nn.BatchNorm1d, "layer": nn.LayerNorm}


class MLPStudent(nn.Module):
    """Multi-layer perceptron student.

    Args:
        in_channels: F, the node feature dimension.
        hidden_channels: width of every hidden layer.
        out_channels: C, the number of classes.
        num_layers: number of linear layers (>= 1; 1 is a linear model).
        dropout: dropout probability after each hidden layer, in [0, 1).
        norm: ``"none"``, ``"batch"`` or ``"layer"`` normalisation of hidden layers.
        residual: add a hidden layer's input to its output where the widths match (no
            weights of its own: the ``state_dict`` is that of the plain MLP).
    """

    def __init__(
        self,
        in_channels: int,
        hidden_channels: int,
        out_channels: int,
        num_layers: int = 2,
        dropout: float = 0.0,
        norm: str = "none",
        residual: bool = False,
    ):
        super().__init__()
        if num_layers < 1:
            raise ConfigError(f"num_layers must be >= 1, got {num_layers}.")
        if min(in_channels, hidden_channels, out_channels) < 1:
            raise ConfigError("in_channels, hidden_channels and out_channels must be >= 1.")
        if not 0.0 <= dropout < 1.0:
            raise ConfigError(f"dropout must be in [0, 1), got {dropout}.")
        if norm not in NORMS:
            raise ConfigError(f"norm must be one of {sorted(NORMS)}, got '{norm}'.")
        if not isinstance(residual, bool):
            raise ConfigError(f"residual must be true or false, got {residual!r}.")
        self.init_args = dict(
            in_channels=in_channels,
            hidden_channels=hidden_channels,
            out_channels=out_channels,
            num_layers=num_layers,
            dropout=dropout,
            norm=norm,
            residual=residual,
        )
        widths = [in_channels] + [hidden_channels] * (num_layers - 1)
        self.hidden = nn.ModuleList()
        for fan_in, fan_out in zip(widths[:-1], widths[1:], strict=True):
            layer = [nn.Linear(fan_in, fan_out)]
            if NORMS[norm] is not None:
                layer.append(NORMS[norm](fan_out))
            layer += [nn.ReLU(), nn.Dropout(dropout)]
            self.hidden.append(nn.Sequential(*layer))
        self.out = nn.Linear(widths[-1], out_channels)
        # which hidden layers add their input back (a plain tuple: traced as constants)
        self.skips = tuple(
            residual and fan_in == fan_out
            for fan_in, fan_out in zip(widths[:-1], widths[1:], strict=True)
        )

    @property
    def embedding_channels(self) -> int:
        return self.out.in_features

    def forward(self, x: Tensor, return_embedding: bool = False) -> Tensor | tuple[Tensor, Tensor]:
        """``[B, F]`` features -> ``[B, C]`` logits (and the ``[B, D]`` last hidden layer)."""
        for layer, skip in zip(self.hidden, self.skips, strict=True):
            x = x + layer(x) if skip else layer(x)
        logits = self.out(x)
        return (logits, x) if return_embedding else logits
