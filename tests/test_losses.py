"""The GLNN objective and the objective interface."""

from __future__ import annotations

import pytest
import torch

from g2m.losses import DistillationBatch, SoftLogitDistillation
from g2m.models import MLPStudent


def make_batch(student_logits, teacher_logits, labelled=None):
    n = student_logits.size(0)
    return DistillationBatch(
        student_logits=student_logits,
        teacher_logits=teacher_logits,
        labels=torch.arange(n) % student_logits.size(1),
        labelled=labelled if labelled is not None else torch.zeros(n, dtype=torch.bool),
    )


@pytest.mark.parametrize("temperature", [0.5, 1.0, 4.0])
def test_kl_vanishes_when_student_equals_teacher(temperature):
    logits = torch.randn(50, 6)
    terms = SoftLogitDistillation(temperature=temperature)(make_batch(logits.clone(), logits))
    assert terms["kd"].abs().item() < 1e-6


def test_kl_is_positive_and_scaled_by_t_squared():
    student, teacher = torch.randn(40, 5), torch.randn(40, 5)
    kd_t2 = SoftLogitDistillation(temperature=2.0)(make_batch(student, teacher))["kd"]
    log_p_s = torch.log_softmax(student / 2, -1)
    p_t = torch.softmax(teacher / 2, -1)
    manual = (p_t * (p_t.log() - log_p_s)).sum(-1).mean() * 4
    torch.testing.assert_close(kd_t2, manual)
    assert kd_t2 > 0


def test_gradients_reach_only_the_student():
    student = MLPStudent(8, 16, 3)
    teacher_logits = torch.randn(20, 3, requires_grad=True)
    x = torch.randn(20, 8)
    labelled = torch.zeros(20, dtype=torch.bool)
    labelled[:5] = True
    objective = SoftLogitDistillation(label_weight=0.3)
    loss = objective.combine(objective(make_batch(student(x), teacher_logits, labelled)))
    loss.backward()
    assert teacher_logits.grad is None
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in student.parameters())


def test_combine_is_lambda_ce_plus_weighted_distillation():
    objective = SoftLogitDistillation(label_weight=0.25, weights={"kd": 2.0})
    terms = {"ce": torch.tensor(4.0), "kd": torch.tensor(3.0)}
    assert objective.combine(terms).item() == pytest.approx(0.25 * 4 + 0.75 * 2 * 3)


def test_ce_uses_only_labelled_nodes_and_is_zero_without_any():
    logits = torch.randn(6, 3, requires_grad=True)
    none = SoftLogitDistillation()(make_batch(logits, logits.detach()))
    assert none["ce"].item() == 0.0
    labelled = torch.tensor([True, False, False, False, False, False])
    some = SoftLogitDistillation()(make_batch(logits, logits.detach(), labelled))
    expected = torch.nn.functional.cross_entropy(logits[:1], torch.tensor([0]))
    torch.testing.assert_close(some["ce"], expected)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"label_weight": 1.5}, r"\[0, 1\]"),
        ({"label_weight": -0.1}, r"\[0, 1\]"),
        ({"temperature": 0.0}, "> 0"),
        ({"weights": {"kd": -1.0}}, ">= 0"),
        ({"weights": {"high": 1.0}}, "exactly"),
    ],
)
def test_bad_hyper_parameters_are_rejected(kwargs, message):
    with pytest.raises(ValueError, match=message):
        SoftLogitDistillation(**kwargs)


def test_objective_declares_its_needs():
    assert not SoftLogitDistillation.needs_edges
    assert SoftLogitDistillation.extra_stages == ()
    assert SoftLogitDistillation.term_names == ("kd",)


def test_supervised_baseline_is_plain_cross_entropy():
    from g2m.losses import SupervisedOnly

    logits = torch.randn(6, 3, requires_grad=True)
    labelled = torch.tensor([True, True, False, False, True, False])
    objective = SupervisedOnly()
    terms = objective(make_batch(logits, torch.randn(6, 3), labelled))
    assert set(terms) == {"ce"}
    labels = torch.arange(6) % 3
    expected = torch.nn.functional.cross_entropy(logits[labelled], labels[labelled])
    torch.testing.assert_close(objective.combine(terms), expected)
