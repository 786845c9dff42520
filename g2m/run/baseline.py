r"""The label-only baseline: is distillation from this teacher worth it on this graph?

On a heterophilous graph (WebKB's Texas, Cornell, Wisconsin) aggregating neighbours can hurt:
a GraphSAGE teacher that averages a node with its neighbours may classify worse than an MLP
that sees the node's features alone (Zhu et al., "Beyond Homophily in Graph Neural
Networks", NeurIPS 2020), and a student that imitates it inherits that. So, beside every
distilled student, g2m trains the same student MLP on the training labels only,

.. math::
    \min_\theta \frac{1}{|\mathcal{V}^L|}
        \sum_{i \in \mathcal{V}^L} \mathrm{CE}(y_i, f_\theta(x_i)),

full batch, plain torch (no Lightning, nothing written), selected on validation accuracy
with the run's tie rule and tested once at the best epoch; it records the baseline's
accuracies and the distillation gain (student minus baseline), and warns when the teacher's
validation accuracy is below the baseline's. It runs under its own seeded RNG stream
(:func:`torch.random.fork_rng`), so it leaves every other stage's random numbers untouched.
"""

from __future__ import annotations

import copy
import logging
import time
from collections.abc import Callable
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from g2m.data.splits import NodeSplit
from g2m.lit.selection import TIE_TOLERANCE
from g2m.run.settings import StageSchedule

log = logging.getLogger("g2m")

BASELINE_NAME = "labels only"  # its row in the summary table: the student MLP, no teacher
SUGGESTED_TEACHER = "sage-root"  # ego and neighbour weights apart (configs/teacher/sage-root.yaml)


def _accuracy(model: nn.Module, x: Tensor, y: Tensor) -> float:
    if y.numel() == 0:
        return float("nan")
    return (model(x).argmax(-1) == y).float().mean().item()


def train_label_only(
    make_model: Callable[[], nn.Module],
    x: Tensor,
    y: Tensor,
    split: NodeSplit,
    schedule: StageSchedule,
    on_tie: str,
    seed: int,
    device: torch.device,
) -> tuple[dict[str, Any], float]:
    """Train ``make_model()`` on the training labels; its metrics block and seconds.

    Args:
        make_model: builds a fresh student MLP (``[B, F] -> [B, C]``).
        x, y: ``[N, F]`` features and ``[N]`` labels of every node.
        split: the run's split (inductive: ``test_ind`` is tested too, as the student's).
        schedule: Adam's lr and weight decay, ``max_epochs`` and ``patience`` (epochs
            without a better validation accuracy before stopping).
        on_tie: ``latest`` (a tie moves the selection on) or ``first``.
        seed: the baseline's own RNG seed (its initialisation and dropout).
        device: where it trains.
    """
    started = time.perf_counter()
    parts = {k: getattr(split, k).cpu() for k in ("train", "val", "test", "test_ind")}
    data = {k: (x[ids].float().to(device), y[ids].to(device)) for k, ids in parts.items()}
    cuda = list(range(torch.cuda.device_count())) if device.type == "cuda" else []
    with torch.random.fork_rng(devices=cuda):
        torch.manual_seed(seed)
        model = make_model().to(device)
        best, best_epoch, epoch = fit(model, data, schedule, on_tie)
    model.load_state_dict(best)
    model.eval()
    with torch.no_grad():
        block = {
            "val_acc": _accuracy(model, *data["val"]),
            "test_acc": _accuracy(model, *data["test"]),
            "best_epoch": best_epoch,
            "epochs": epoch + 1,
        }
        if split.inductive:
            ind = _accuracy(model, *data["test_ind"])
            block |= {"test_acc_ind": ind, "test_acc_prod": 0.8 * block["test_acc"] + 0.2 * ind}
    return block, time.perf_counter() - started


def fit(
    model: nn.Module, data: dict[str, tuple[Tensor, Tensor]], schedule: StageSchedule, on_tie: str
) -> tuple[dict[str, Tensor], int, int]:
    """Full-batch Adam on the training nodes; the best-validation weights, their epoch and
    the last epoch run."""
    optimiser = torch.optim.Adam(
        model.parameters(), schedule.lr, weight_decay=schedule.weight_decay
    )
    (x_train, y_train), (x_val, y_val) = data["train"], data["val"]
    # as the Lightning stages' EarlyStopping: under `latest` a tie counts as an improvement
    tolerance = TIE_TOLERANCE if on_tie == "latest" else 0.0
    best_acc, best, best_epoch, epoch = -1.0, None, 0, 0
    for epoch in range(schedule.max_epochs):
        model.train()
        optimiser.zero_grad(set_to_none=True)
        F.cross_entropy(model(x_train), y_train).backward()
        optimiser.step()
        model.eval()
        with torch.no_grad():
            acc = _accuracy(model, x_val, y_val)
        if best is None or acc + tolerance > best_acc:
            best_acc, best_epoch = max(acc, best_acc), epoch
            best = copy.deepcopy(model.state_dict())
        elif epoch - best_epoch >= schedule.patience:
            break
    return best, best_epoch, epoch


def compare(
    metrics: dict[str, Any], baseline: dict[str, Any], teacher_name: str | None
) -> dict[str, Any]:
    """The metrics.json keys of the baseline: ``baseline`` (its accuracies),
    ``distillation_gain`` (student minus baseline, fractions) and ``teacher_below_baseline``;
    logs one warning when the teacher's validation accuracy is below the baseline's."""
    student = metrics["student"]
    gain = {
        key.removesuffix("_acc").replace("_acc_", "_"): student[key] - baseline[key]
        for key in ("val_acc", "test_acc", "test_acc_ind", "test_acc_prod")
        if key in student and key in baseline
    }
    teacher = metrics.get("teacher")
    below = teacher is not None and teacher["val_acc"] < baseline["val_acc"]
    if below:
        advice = (
            f"try a teacher that keeps each node's own features apart, e.g. "
            f"teacher={SUGGESTED_TEACHER}"
            if teacher_name != SUGGESTED_TEACHER
            else "the label-only MLP (loss=supervised) may serve better than distilling it"
        )
        log.warning(
            "The %s teacher's validation accuracy (%.2f%%) is below a label-only MLP's "
            "(%.2f%%): the graph hurts it here (heterophily?) and the student inherits that; %s.",
            teacher_name, 100 * teacher["val_acc"], 100 * baseline["val_acc"], advice,
        )  # fmt: skip
    return {"baseline": baseline, "distillation_gain": gain, "teacher_below_baseline": below}
