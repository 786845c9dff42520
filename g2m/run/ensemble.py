r"""``teacher=ensemble``: distil one student from K trained teachers, none of them retrained.

The members are teacher artifacts (``teacher.pt`` of earlier runs on this dataset, split and
seed; each is checked as ``teacher.artifact=`` is). With member *k*'s stored logits
:math:`z^k_i` the ensemble's soft label of node *i* is the mixture (Hinton et al., 2015,
"Distilling the Knowledge in a Neural Network", Sec. 1: an ensemble's averaged predictions
as the distillation target)

.. math::
    p_i = \sum_{k=1}^K w_k\,\mathrm{softmax}(z^k_i / T), \qquad
    w_k = \begin{cases} 1/K & \texttt{combine=mean} \\
        \mathrm{softmax}_k(a_k / \tau_w) & \texttt{combine=weighted} \end{cases}

with :math:`a_k` member *k*'s validation accuracy (never its test accuracy) and
:math:`\tau_w > 0` the weighting temperature (small: the best member dominates; large: the
mean). The ensemble hands the student stage :math:`\log p_i` as its logits, so every
objective distils it as it would any teacher's (its own temperature then acts on
:math:`\log p`), and the members' embeddings side by side, ``[N, sum_k D_k]``, as its
embedding. Its metrics are its own validation and test accuracy (argmax of :math:`p`) on the
observed nodes; its inference time is the members' summed (all of them run).

Not covered: the held-out nodes of the inductive setting have no stored logits, so the
ensemble reports no ``test_acc_ind`` of its own; an objective with an extra stage built from
the teacher's GNN (``loss=vq``) has no GNN to build from and is refused.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path

import torch
from torch import Tensor

from g2m.data.splits import NodeSplit
from g2m.errors import ArtifactError, ConfigError
from g2m.run.artifacts import TeacherArtifact

log = logging.getLogger("g2m")

COMBINE = ("mean", "weighted")


class TeacherEnsemble:
    """The ensemble's settings (``g2m/configs/teacher/ensemble.yaml`` holds the defaults).

    Args:
        members: paths of two or more teacher artifacts.
        combine: ``mean`` (equal weights) or ``weighted`` (by validation accuracy).
        temperature: :math:`T > 0` of each member's softmax.
        weight_temperature: :math:`\\tau_w > 0` of the ``weighted`` member weights.
    """

    def __init__(
        self,
        members: Sequence[str | Path],
        combine: str,
        temperature: float,
        weight_temperature: float,
    ):
        if isinstance(members, str | Path) or len(members) < 2:
            raise ConfigError(
                f"teacher.members={list(members) if not isinstance(members, str) else members!r}: "
                "expected a list of two or more teacher.pt paths, e.g. "
                "teacher.members=[runs/a/teacher.pt,runs/b/teacher.pt]."
            )
        if combine not in COMBINE:
            raise ConfigError(f"teacher.combine={combine!r}: expected one of {', '.join(COMBINE)}.")
        for key, value in (
            ("temperature", temperature),
            ("weight_temperature", weight_temperature),
        ):
            if not isinstance(value, int | float) or not value > 0:
                raise ConfigError(f"teacher.{key}={value!r}: expected a number > 0.")
        self.members = [Path(m) for m in members]
        self.combine, self.temperature = combine, float(temperature)
        self.weight_temperature = float(weight_temperature)
        missing = [str(m) for m in self.members if not m.is_file()]
        if missing:
            raise ConfigError(f"teacher.members: no such file: {', '.join(missing)}.")

    def weights(self, members: list[TeacherArtifact]) -> Tensor:
        """``[K]`` member weights :math:`w_k`."""
        if self.combine == "mean":
            return torch.full((len(members),), 1.0 / len(members))
        accuracy = torch.tensor([float(m.metrics["val_acc"]) for m in members], dtype=torch.float64)
        return torch.softmax(accuracy / self.weight_temperature, dim=0)

    def artifact(
        self, dataset: str, labels: Tensor, num_features: int, split: NodeSplit, graph_digest: str
    ) -> TeacherArtifact:
        """The ensemble as a :class:`TeacherArtifact` for this run's graph (``[N]`` labels,
        F features, the digest of :class:`~g2m.run.pipeline.StoreKeys`) and split."""
        members = [
            self._load(path, dataset, num_features, split, graph_digest) for path in self.members
        ]
        weights = self.weights(members)
        probabilities = sum(
            w * torch.softmax(m.logits.double() / self.temperature, dim=-1)
            for w, m in zip(weights.double(), members, strict=True)
        )
        logits = probabilities.log().float()
        embedding = torch.cat([m.embedding for m in members], dim=1)
        names = "+".join(m.teacher for m in members)
        log.info(
            "Teacher ensemble of %d members (%s), %s weights %s",
            len(members), names, self.combine, [round(float(w), 3) for w in weights],
        )  # fmt: skip
        return TeacherArtifact(
            logits,
            embedding,
            split,
            dataset,
            f"ensemble({names})",
            num_features,
            metrics={
                "val_acc": accuracy(logits, labels, split.val),
                "test_acc": accuracy(logits, labels, split.test),
                "members": [str(p) for p in self.members],
                "weights": [round(float(w), 6) for w in weights],
            },
            timings={
                "seconds": 0.0,
                "inference_ms": _summed(m.timings.get("inference_ms") for m in members),
            },
        )

    @staticmethod
    def _load(
        path: Path, dataset: str, num_features: int, split: NodeSplit, graph_digest: str
    ) -> TeacherArtifact:
        member = TeacherArtifact.load(path)
        try:
            member.check_compatible(dataset, num_features, split)
        except ArtifactError as err:
            raise ArtifactError(f"teacher.members: {path}: {err}") from None
        recorded = (member.provenance or {}).get("graph")
        if recorded is not None and recorded != graph_digest:
            raise ArtifactError(
                f"The teacher artifact {path} (teacher.members) was made from another graph "
                "(its features, edges or labels differ); use teachers of this graph."
            )
        return member


def accuracy(logits: Tensor, labels: Tensor, nodes: Tensor) -> float:
    """Accuracy of ``argmax logits`` on ``nodes`` (global ids)."""
    nodes = nodes.cpu()
    if nodes.numel() == 0:
        return float("nan")
    return float((logits[nodes].argmax(-1) == labels.cpu()[nodes]).float().mean())


def _summed(values) -> float | None:
    values = list(values)
    return None if any(v is None for v in values) else round(sum(values), 3)
