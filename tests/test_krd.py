"""KRD: the reliability scores, the neighbour-sampled term, the fitted power, the state it
keeps across epochs (and checkpoints), and end-to-end runs."""

from __future__ import annotations

import math

import pytest
import torch

from g2m.errors import ArtifactError, ConfigError
from g2m.losses import DistillationBatch, SoftLogitDistillation
from g2m.losses.krd import ReliableDistillation, fit_power, kl_per_row
from g2m.models import MLPStudent
from g2m.run import pipeline
from g2m.run.build import build_run
from g2m.run.reliability_stage import ReliabilityStage, entropy, entropy_change
from tests.conftest import compose_config, tiny_overrides


def edge_batch(student, teacher, position, neighbours, teacher_all, nodes=None, seed=0):
    n = student.size(0)
    return DistillationBatch(
        student_logits=student,
        teacher_logits=teacher,
        labels=torch.zeros(n, dtype=torch.long),
        labelled=torch.zeros(n, dtype=torch.bool),
        nodes=nodes if nodes is not None else torch.arange(n),
        edge_position=position,
        neighbour_nodes=neighbours,
        neighbour_teacher_logits=teacher_all[neighbours],
        neighbour_student_logits=torch.zeros(neighbours.numel(), student.size(1)),
        generator=torch.Generator().manual_seed(seed),
    )


def krd(reliability, **kwargs):
    objective = ReliableDistillation(**kwargs)
    objective.attach_reliability(reliability)
    return objective


def test_during_warmup_the_term_averages_over_self_and_every_neighbour():
    torch.manual_seed(0)
    teacher_all, student = torch.randn(4, 3), torch.randn(2, 3)
    # batch nodes 0 and 1; node 0's neighbours 2 and 3, node 1's neighbour 3
    position, neighbours = torch.tensor([0, 0, 1]), torch.tensor([2, 3, 3])
    objective = krd(torch.tensor([0.1, 0.2, 0.9, 1.0]), temperature=2.0)
    batch = edge_batch(student, teacher_all[:2], position, neighbours, teacher_all)
    pairs = [(0, 0), (1, 1), (0, 2), (0, 3), (1, 3)]  # (student row, teacher node)
    by_hand = sum(
        (torch.softmax(teacher_all[j] / 2, -1) * (torch.log_softmax(teacher_all[j] / 2, -1)
         - torch.log_softmax(student[i] / 2, -1))).sum()
        for i, j in pairs
    ) / len(pairs)  # fmt: skip
    torch.testing.assert_close(objective(batch)["kd"], 4 * by_hand)


def test_without_neighbours_krd_is_glnn():
    torch.manual_seed(1)
    student, teacher = torch.randn(6, 4), torch.randn(6, 4)
    none = torch.zeros(0, dtype=torch.long)
    objective = krd(torch.rand(6), temperature=1.5, label_weight=0.2)
    batch = edge_batch(student, teacher, none, none, teacher)
    glnn = SoftLogitDistillation(label_weight=0.2, temperature=1.5)
    torch.testing.assert_close(
        objective.combine(objective(batch)), glnn.combine(glnn(edge_batch(student, teacher,
                                                                        none, none, teacher)))
    )  # fmt: skip


def test_after_warmup_unreliable_neighbours_are_never_kept():
    """rho = 1 gives s = 1 - 1**alpha = 0: such a neighbour never enters; rho = 0 always."""
    torch.manual_seed(2)
    teacher_all, student = torch.randn(4, 3), torch.randn(1, 3)
    objective = krd(torch.tensor([0.0, 0.0, 1.0, 0.0]), warmup_epochs=0)
    position, neighbours = torch.tensor([0, 0]), torch.tensor([2, 3])
    batch = edge_batch(student, teacher_all[:1], position, neighbours, teacher_all)
    own, kept = kl_per_row(student, teacher_all[:1], 1.0), kl_per_row(student, teacher_all[3:], 1.0)
    expected = (own + kept) / 2
    torch.testing.assert_close(objective(batch)["kd"], expected.squeeze())
    probability = objective.keep_probability(torch.tensor([0, 2, 3]))
    torch.testing.assert_close(probability, torch.tensor([1.0, 0.0, 1.0]))


def test_gradients_reach_only_the_student():
    model = MLPStudent(5, 8, 3)
    teacher_all = torch.randn(6, 3, requires_grad=True)
    objective = krd(torch.rand(6))
    student = model(torch.randn(3, 5))
    batch = edge_batch(student, teacher_all[:3], torch.tensor([0, 1, 2]),
                       torch.tensor([3, 4, 5]), teacher_all)  # fmt: skip
    objective.combine(objective(batch)).backward()
    assert teacher_all.grad is None
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in model.parameters())


def test_the_fitted_power_recovers_a_known_curve():
    centres = (torch.arange(20) + 0.5) / 20
    assert fit_power(centres, 1 - centres**3.0, 1.0) == pytest.approx(3.0, rel=1e-4)
    assert fit_power(centres, 1 - centres**0.4, 1.0) == pytest.approx(0.4, rel=1e-4)
    assert fit_power(centres[:1], centres[:1], 1.7) == 1.7  # too few bins: unchanged


def test_end_epoch_counts_epochs_and_moves_the_power_by_its_momentum():
    rho = torch.linspace(0, 1, 200)
    objective = krd(rho, warmup_epochs=1, bins=10, momentum=0.5, initial_power=1.0)
    teacher = torch.nn.functional.one_hot(torch.zeros(200, dtype=torch.long), 3).float() * 5
    # the student agrees with the teacher where rho**2 < u for a fixed draw u: agreement
    # falls with rho, and the counts follow 1 - rho**2 up to noise
    u = torch.rand(200, generator=torch.Generator().manual_seed(0))
    agree = rho**2 < u
    student = torch.where(agree[:, None], teacher, teacher.roll(1, dims=1))
    objective.count_agreement(edge_batch(student, teacher, *[torch.zeros(0, dtype=torch.long)] * 2,
                                         teacher))  # fmt: skip
    assert int(objective.counted.sum()) == 200
    objective.end_epoch()
    assert int(objective.epochs_done) == 1
    assert 1.0 < float(objective.power) < 3.0  # halfway from 1 towards the fitted ~2
    assert float(objective.counted.sum()) == 0  # the next epoch counts afresh
    state = objective.state_dict()
    assert {"power", "epochs_done", "agreeing", "counted"} <= set(state)
    assert "reliability" not in state  # re-attached from the stage's artifact on resume
    again = krd(rho, warmup_epochs=1, bins=10, momentum=0.5)
    again.load_state_dict(state)
    assert float(again.power) == float(objective.power) and int(again.epochs_done) == 1


def test_reliability_is_the_normalised_entropy_change():
    clean = torch.tensor([[2.0, 0.0], [0.0, 0.0], [1.0, 1.0]])
    noisy = torch.tensor([[0.0, 0.0], [0.0, 0.0], [3.0, 0.0]])
    change = (entropy(noisy) - entropy(clean)).abs()
    torch.testing.assert_close(entropy_change(clean, noisy), change / change.max())
    assert entropy(torch.zeros(1, 4)).item() == pytest.approx(math.log(4))
    assert torch.equal(entropy_change(clean, clean), torch.zeros(3))


def test_bad_settings_are_one_config_error():
    cases = [
        ({"bins": 1}, "bins"),
        ({"momentum": 1.5}, "momentum"),
        ({"initial_power": 0}, "initial_power"),
        ({"warmup_epochs": -1}, "warmup"),
    ]
    for kwargs, key in cases:
        with pytest.raises(ConfigError, match=key):
            ReliableDistillation(**kwargs)
    with pytest.raises(ConfigError, match="noise"):
        ReliabilityStage(noise=0)


def test_krd_declares_edges_a_generator_and_its_stage():
    plan = build_run(compose_config(["loss=krd"]))
    assert [s.name for s in plan.stages] == ["reliability"]
    assert ReliableDistillation.needs_edges and ReliableDistillation.needs_generator


def test_a_teacher_artifact_without_weights_is_refused_by_the_stage(tiny_graph, tmp_path):
    from g2m.run.extra import StageContext

    stage = ReliabilityStage()
    stage.build(8, 3, lambda **kw: None, False)

    class OldTeacher:
        model_state = None

    context = StageContext(tiny_graph, None, "tiny", OldTeacher(), 0, tmp_path, False, None)
    with pytest.raises(ArtifactError, match="teacher's weights"):
        stage.train(context)


@pytest.mark.slow
@pytest.mark.parametrize("setting", ["transductive", "inductive"])
def test_krd_end_to_end(setting, tmp_path, cache_dir):
    cfg = compose_config(tiny_overrides(cache_dir, "loss=krd", f"setting={setting}",
                                        "loss.warmup_epochs=3", "store=false"))  # fmt: skip
    metrics = pipeline.run(cfg, tmp_path)
    assert metrics["student"]["test_acc"] > 0.5
    assert 0 < metrics["reliability"]["mean"] < 1
    reliability = torch.load(tmp_path / "reliability.pt", weights_only=True)["reliability"]
    teacher = torch.load(tmp_path / "teacher.pt", weights_only=True)
    held_out = teacher["logits"].isnan().any(1)  # the teacher's rows of held-out nodes
    assert torch.equal(reliability.isnan(), held_out)
    assert bool(held_out.any()) == (setting == "inductive")
    assert teacher["model_state"]  # the teacher's weights, which the stage ran again
