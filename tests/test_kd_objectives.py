"""BD-KD, Plackett-Luce, mixup and Propagate & Distill: their terms, the two interface hooks
they use (targets prepared once over the observed graph, a second forward on mixed
features) and one tiny end-to-end run each."""

from __future__ import annotations

import itertools
import json
import math

import pytest
import torch

from g2m.errors import ConfigError
from g2m.lit.student import StudentSystem
from g2m.losses import DistillationBatch, SoftLogitDistillation
from g2m.losses.base import kl_divergence
from g2m.losses.bdkd import BalancedDivergence
from g2m.losses.mixup import MixupDistillation, symmetric_beta_sample
from g2m.losses.pld import PlackettLuceDistillation, plackett_luce_loss, teacher_ranking
from g2m.losses.pnd import PropagatedDistillation, propagate_soft_labels
from g2m.models import MLPStudent
from g2m.run import pipeline
from g2m.run.build import build_run
from g2m.run.student_stage import observed_edges, prepared_logits
from tests.conftest import compose_config, cpf_split, tiny_overrides


def make_batch(student_logits, teacher_logits, labelled=None, labels=None, **fields):
    n = student_logits.size(0)
    return DistillationBatch(
        student_logits=student_logits,
        teacher_logits=teacher_logits,
        labels=labels if labels is not None else torch.arange(n) % student_logits.size(1),
        labelled=labelled if labelled is not None else torch.zeros(n, dtype=torch.bool),
        **fields,
    )


def kl_rows(p_logits, q_logits):
    """KL(softmax(p) || softmax(q)) per row, written out."""
    p = torch.softmax(p_logits, -1)
    return (p * (p.log() - torch.log_softmax(q_logits, -1))).sum(-1)


def entropy(logits):
    p = torch.softmax(logits, -1)
    return -(p * p.log()).sum(-1)


# ---------------------------------------------------------------- BD-KD


@pytest.mark.parametrize("temperature", [0.5, 1.0, 3.0])
def test_bdkd_terms_vanish_when_student_equals_teacher(temperature):
    logits = torch.randn(40, 5)
    terms = BalancedDivergence(temperature=temperature)(make_batch(logits.clone(), logits))
    assert terms["forward"].abs().item() < 1e-6 and terms["reverse"].abs().item() < 1e-6


def test_bdkd_with_balance_one_is_plain_forward_and_reverse_kl():
    student, teacher = torch.randn(30, 4), torch.randn(30, 4)
    terms = BalancedDivergence(balance=1.0, temperature=2.0)(make_batch(student, teacher))
    torch.testing.assert_close(terms["forward"], 4 * kl_divergence(student, teacher, 2.0))
    reverse = kl_rows(student / 2, teacher / 2).mean() * 4  # KL(student || teacher), by hand
    torch.testing.assert_close(terms["reverse"], reverse)
    assert terms["reverse"] > 0 and not torch.isclose(terms["reverse"], terms["forward"])


def test_bdkd_boosts_the_divergence_the_entropy_rule_picks():
    # row 0: a flat student, a sharp teacher (student less sure); row 1: the opposite
    student = torch.tensor([[0.1, 0.0, -0.1], [6.0, 0.0, -2.0]])
    teacher = torch.tensor([[5.0, 0.0, -1.0], [0.2, 0.0, 0.1]])
    assert entropy(student[0]) > entropy(teacher[0]) and entropy(student[1]) < entropy(teacher[1])
    delta = 3.0
    terms = BalancedDivergence(balance=delta)(make_batch(student, teacher))
    forward, reverse = kl_rows(teacher, student), kl_rows(student, teacher)
    torch.testing.assert_close(terms["forward"], (forward[0] + delta * forward[1]) / 2)
    torch.testing.assert_close(terms["reverse"], (delta * reverse[0] + reverse[1]) / 2)


def test_bdkd_gradients_reach_only_the_student():
    model = MLPStudent(8, 16, 3)
    teacher = torch.randn(20, 3, requires_grad=True)
    objective = BalancedDivergence(label_weight=0.2)
    objective.combine(objective(make_batch(model(torch.randn(20, 8)), teacher))).backward()
    assert teacher.grad is None
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in model.parameters())


# ---------------------------------------------------------------- Plackett-Luce


def test_pl_loss_matches_the_plackett_luce_likelihood_written_out():
    student, teacher = torch.randn(3, 4), torch.randn(3, 4)
    got = PlackettLuceDistillation(temperature=1.5)(make_batch(student, teacher))["pl"]
    total = 0.0
    for s, t in zip(student, teacher, strict=True):
        order = sorted(range(4), key=lambda c: -t[c].item())
        alpha = torch.softmax(t / 1.5, -1)
        for k, c in enumerate(order):
            rest = torch.stack([s[j] for j in order[k:]])
            total += alpha[c] * -(s[c] - torch.logsumexp(rest, 0))  # -log P(pick c | rest)
    torch.testing.assert_close(got, total / 3)


def test_pl_loss_is_smallest_when_the_student_ranks_as_the_teacher():
    teacher = torch.tensor([[0.3, 2.0, -1.0, 1.1]])
    scores = torch.tensor([3.0, 1.0, 0.5, -2.0])
    objective = PlackettLuceDistillation()
    losses = {}
    for perm in itertools.permutations(range(4)):
        student = scores[list(perm)].unsqueeze(0)
        losses[perm] = objective(make_batch(student, teacher))["pl"].item()
    best = min(losses, key=losses.get)
    student_order = scores[list(best)].argsort(descending=True)
    assert torch.equal(student_order, teacher[0].argsort(descending=True))
    assert sorted(losses.values())[1] > losses[best] + 1e-4  # a strict minimum


def test_pl_loss_is_shift_invariant_and_its_first_rank_is_cross_entropy():
    student, teacher = torch.randn(10, 5), torch.randn(10, 5)
    objective = PlackettLuceDistillation()
    base = objective(make_batch(student, teacher))["pl"]
    shifted = objective(make_batch(student + torch.randn(10, 1) * 5, teacher))["pl"]
    torch.testing.assert_close(base, shifted)
    ranking = teacher_ranking(teacher)
    first_only = torch.zeros(10, 5)
    first_only[:, 0] = 1.0
    ce = torch.nn.functional.cross_entropy(student, teacher.argmax(-1))
    torch.testing.assert_close(plackett_luce_loss(student, ranking, first_only), ce)


def test_pl_ranks_the_true_class_first_on_labelled_nodes_only():
    teacher = torch.tensor([[3.0, 1.0, 2.0], [3.0, 1.0, 2.0]])
    labels = torch.tensor([1, 1])
    ranking = teacher_ranking(teacher, torch.tensor([1, -1]))
    assert ranking.tolist() == [[1, 0, 2], [0, 2, 1]]
    student = torch.randn(2, 3)
    labelled = torch.tensor([True, False])
    with_label = PlackettLuceDistillation()(make_batch(student, teacher, labelled, labels))
    no_label = PlackettLuceDistillation(label_first=False)(
        make_batch(student, teacher, labelled, labels)
    )
    assert not torch.isclose(with_label["pl"], no_label["pl"])


def test_pl_gradients_reach_only_the_student():
    model = MLPStudent(8, 16, 4)
    teacher = torch.randn(12, 4, requires_grad=True)
    objective = PlackettLuceDistillation()
    objective.combine(objective(make_batch(model(torch.randn(12, 8)), teacher))).backward()
    assert teacher.grad is None
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in model.parameters())


# ---------------------------------------------------------------- mixup


def test_beta_draws_are_seeded_and_have_the_beta_moments():
    draws = [symmetric_beta_sample(0.4, torch.Generator().manual_seed(3)) for _ in range(2)]
    assert draws[0] == draws[1]
    generator = torch.Generator().manual_seed(0)
    sample = torch.tensor([symmetric_beta_sample(0.4, generator) for _ in range(4000)])
    assert ((sample >= 0) & (sample <= 1)).all()
    assert sample.mean().item() == pytest.approx(0.5, abs=0.02)
    assert sample.var().item() == pytest.approx(1 / (4 * (2 * 0.4 + 1)), abs=0.01)
    tiny = torch.tensor([symmetric_beta_sample(1e-4, generator) for _ in range(200)])
    assert (torch.minimum(tiny, 1 - tiny) < 1e-3).all()  # a -> 0: lambda at 0 or 1


def mixed_batch(model, x, teacher, index, weight):
    mixed = weight * x + (1 - weight) * x[index]
    return make_batch(
        model(x),
        teacher,
        mixed_student_logits=model(mixed),
        mix_index=index,
        mix_weight=torch.tensor(weight),
    )


def test_mix_term_is_the_kl_to_the_mixed_teacher_probabilities():
    model = MLPStudent(6, 8, 3).eval()
    x, teacher = torch.randn(5, 6), torch.randn(5, 3)
    index, weight = torch.tensor([2, 0, 4, 1, 3]), 0.3
    terms = MixupDistillation(temperature=2.0)(mixed_batch(model, x, teacher, index, weight))
    p_t = torch.softmax(teacher / 2, -1)
    target = 0.3 * p_t + 0.7 * p_t[index]
    log_q = torch.log_softmax(model(0.3 * x + 0.7 * x[index]) / 2, -1)
    manual = (target * (target.log() - log_q)).sum(-1).mean() * 4
    torch.testing.assert_close(terms["mix"], manual)
    torch.testing.assert_close(terms["kd"], 4 * kl_divergence(model(x), teacher, 2.0))


def test_mix_term_reduces_to_the_unmixed_term_as_alpha_goes_to_zero():
    model = MLPStudent(6, 8, 3).eval()
    x, teacher = torch.randn(16, 6), torch.randn(16, 3)
    objective = MixupDistillation(alpha=1e-4)
    generator = torch.Generator().manual_seed(1)
    for _ in range(4):
        index, weight = objective.draw_mixing(16, generator)
        terms = objective(mixed_batch(model, x, teacher, index, weight.item()))
        torch.testing.assert_close(terms["mix"], terms["kd"], atol=1e-3, rtol=1e-3)


def test_mix_term_gives_gradient_to_the_student():
    model = MLPStudent(6, 8, 3)
    objective = MixupDistillation()
    batch = mixed_batch(model, torch.randn(8, 6), torch.randn(8, 3), torch.randperm(8), 0.5)
    objective.combine({**objective(batch), "kd": torch.tensor(0.0)}).backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in model.parameters())


def recording(base):
    seen = []

    class Recording(base):
        def distillation_terms(self, batch):
            seen.append(batch)
            return super().distillation_terms(batch)

    return Recording, seen


def student_system(graph, objective, seed=0):
    split = cpf_split(graph, 0, 0.0)
    return StudentSystem(
        MLPStudent(8, 16, 3),
        objective,
        graph.x,
        graph.y,
        torch.randn(graph.num_nodes, 3),
        None,
        split,
        lr=0.01,
        weight_decay=0.0,
        batch_size=32,
        seed=seed,
    )


def test_student_system_runs_the_mixed_forward_from_its_own_generator(tiny_graph):
    cls, seen = recording(MixupDistillation)
    system = student_system(tiny_graph, cls())
    system.eval()  # no dropout: the mixed logits are the model's at the mixed features
    idx = system.pool[:32]
    assert torch.isfinite(system.training_step(idx, 0))
    batch = seen[-1]
    x = tiny_graph.x[idx]
    expected = batch.mix_weight * x + (1 - batch.mix_weight) * x[batch.mix_index]
    torch.testing.assert_close(batch.mixed_student_logits, system.model(expected))
    assert sorted(batch.mix_index.tolist()) == list(range(32))
    # the draws come from the system's seeded generator: a second system draws the same
    cls2, seen2 = recording(MixupDistillation)
    student_system(tiny_graph, cls2()).training_step(idx, 0)
    assert torch.equal(seen2[-1].mix_index, batch.mix_index)
    assert seen2[-1].mix_weight.item() == batch.mix_weight.item()


def test_the_mixing_generator_resumes_from_a_checkpoint(tiny_graph):
    cls, seen = recording(MixupDistillation)
    system = student_system(tiny_graph, cls())
    idx = system.pool[:32]
    system.training_step(idx, 0)
    checkpoint = {}
    system.on_save_checkpoint(checkpoint)
    assert "mixup" in checkpoint["g2m_rng"]["stage"]
    system.training_step(idx, 1)  # the uninterrupted run's next draw
    cls2, resumed = recording(MixupDistillation)
    again = student_system(tiny_graph, cls2())
    again.on_load_checkpoint(checkpoint)
    again.training_step(idx, 1)
    assert torch.equal(resumed[-1].mix_index, seen[-1].mix_index)
    assert resumed[-1].mix_weight.item() == seen[-1].mix_weight.item()


def test_objectives_without_mixing_take_no_extra_step(tiny_graph):
    cls, seen = recording(SoftLogitDistillation)
    system = student_system(tiny_graph, cls())
    system.training_step(system.pool[:32], 0)
    assert seen[-1].mixed_student_logits is None and not system._stage_generators
    with pytest.raises(NotImplementedError, match="mixes no inputs"):
        SoftLogitDistillation().draw_mixing(4, torch.Generator())


# ---------------------------------------------------------------- Propagate & Distill


def clique_edges(nodes):
    return torch.tensor([(i, j) for i in nodes for j in nodes if i != j]).t()


def test_zero_propagation_steps_leave_the_teacher_distribution_as_it_is():
    logits = torch.randn(6, 3)
    edges = clique_edges(range(6))
    prepared = PropagatedDistillation(num_layers=0).prepare_targets(logits, edges, 6)
    torch.testing.assert_close(torch.softmax(prepared, -1), torch.softmax(logits, -1))


def test_propagation_keeps_mass_within_each_of_two_disconnected_cliques():
    edges = torch.cat([clique_edges(range(4)), clique_edges(range(4, 8))], dim=1)
    logits = torch.randn(8, 3) * 2
    objective = PropagatedDistillation(num_layers=5, alpha=0.8)
    p_t = torch.softmax(logits, -1)
    out = torch.softmax(objective.prepare_targets(logits, edges, 8), -1)
    # a clique is regular: each one's total of every class is kept, and rows move toward it
    torch.testing.assert_close(out[:4].sum(0), p_t[:4].sum(0))
    torch.testing.assert_close(out[4:].sum(0), p_t[4:].sum(0))
    assert (out[:4] - p_t[:4].mean(0)).abs().sum() < (p_t[:4] - p_t[:4].mean(0)).abs().sum()
    # and nothing crosses over: changing the second clique's teacher leaves the first's targets
    other = logits.clone()
    other[4:] = torch.randn(4, 3) * 5
    again = torch.softmax(objective.prepare_targets(other, edges, 8), -1)
    torch.testing.assert_close(again[:4], out[:4])


def test_one_propagation_step_matches_the_normalised_adjacency_by_hand():
    edges = torch.tensor([[0, 1, 1, 2], [1, 0, 2, 1]])  # path 0-1-2
    logits = torch.randn(3, 4)
    p = torch.softmax(logits, -1)
    deg = torch.tensor([1.0, 2.0, 1.0])
    adj = torch.zeros(3, 3)
    adj[edges[0], edges[1]] = 1.0
    a_hat = adj / deg.sqrt()[:, None] / deg.sqrt()[None, :]
    y = 0.6 * a_hat @ p + 0.4 * p
    expected = y / y.sum(-1, keepdim=True)
    got = propagate_soft_labels(p, edges, num_layers=1, alpha=0.6)
    torch.testing.assert_close(got, expected)


def test_held_out_rows_stay_nan_and_give_no_mass(tiny_graph):
    cls = PropagatedDistillation
    split = cpf_split(tiny_graph, 0, 0.2)
    logits = torch.randn(tiny_graph.num_nodes, 3)
    logits[split.test_ind] = float("nan")
    edges_seen = []

    class Recording(cls):
        def prepare_targets(self, logits, edge_index, num_nodes):
            edges_seen.append(edge_index)
            return super().prepare_targets(logits, edge_index, num_nodes)

    prepared = prepared_logits(Recording(), logits, tiny_graph, split)
    held_out = torch.zeros(tiny_graph.num_nodes, dtype=torch.bool)
    held_out[split.test_ind] = True
    assert not held_out[edges_seen[0]].any()  # the student stage hands the observed graph only
    assert torch.equal(edges_seen[0], observed_edges(tiny_graph, split))
    assert torch.isnan(prepared[split.test_ind]).all()
    assert torch.isfinite(prepared[split.observed]).all()
    # even an edge into a held-out node carries no NaN to the observed side
    leaky = torch.cat([edges_seen[0], torch.stack([split.observed[:3], split.test_ind[:3]])], 1)
    probabilities = torch.softmax(logits, -1)
    assert torch.isfinite(propagate_soft_labels(probabilities, leaky, 3, 0.9)[split.observed]).all()


def test_targets_are_prepared_only_for_objectives_that_declare_it(tiny_graph):
    split = cpf_split(tiny_graph, 0, 0.0)
    logits = torch.randn(tiny_graph.num_nodes, 3)
    assert prepared_logits(SoftLogitDistillation(), logits, tiny_graph, split) is logits
    assert prepared_logits(PropagatedDistillation(), None, tiny_graph, split) is None
    changed = prepared_logits(PropagatedDistillation(), logits, tiny_graph, split)
    assert not torch.allclose(torch.softmax(changed, -1), torch.softmax(logits, -1))


def test_pnd_term_is_glnn_on_the_prepared_targets():
    student, teacher = torch.randn(9, 3), torch.randn(9, 3)
    terms = PropagatedDistillation(temperature=2.0)(make_batch(student, teacher))
    torch.testing.assert_close(terms["kd"], 4 * kl_divergence(student, teacher, 2.0))


# ---------------------------------------------------------------- checks and configs


@pytest.mark.parametrize(
    ("cls", "kwargs", "message"),
    [
        (BalancedDivergence, {"balance": 0.5}, "balance"),
        (BalancedDivergence, {"temperature": 0.0}, "temperature"),
        (BalancedDivergence, {"weights": {"kd": 1.0}}, "exactly"),
        (PlackettLuceDistillation, {"temperature": -1.0}, "temperature"),
        (MixupDistillation, {"alpha": 0.0}, "alpha"),
        (PropagatedDistillation, {"num_layers": -1}, "num_layers"),
        (PropagatedDistillation, {"num_layers": 1.5}, "num_layers"),
        (PropagatedDistillation, {"alpha": 1.0}, r"\[0, 1\)"),
    ],
)
def test_bad_hyper_parameters_are_one_config_error(cls, kwargs, message):
    with pytest.raises(ConfigError, match=message) as err:
        cls(**kwargs)
    assert "\n" not in str(err.value)


@pytest.mark.parametrize(
    ("option", "override", "terms"),
    [
        ("bdkd", "loss.weights.reverse=0", {"forward": 2.0, "reverse": 7.0}),
        ("mixup", "loss.weights.mix=0", {"kd": 2.0, "mix": 7.0}),
    ],
)
def test_ablations_are_weight_overrides(option, override, terms):
    cfg = compose_config([f"loss={option}", override])
    objective = build_run(cfg).objective
    total = objective.combine(
        {"ce": torch.tensor(1.0), **{k: torch.tensor(v) for k, v in terms.items()}}
    )
    lam = cfg.loss.label_weight
    assert total.item() == pytest.approx(lam * 1 + (1 - lam) * 2.0)


def test_the_objectives_declare_their_needs():
    assert PropagatedDistillation.prepares_targets and not PropagatedDistillation.needs_edges
    assert MixupDistillation.needs_mixed_inputs and not MixupDistillation.prepares_targets
    for cls in (BalancedDivergence, PlackettLuceDistillation, SoftLogitDistillation):
        assert not cls.prepares_targets and not cls.needs_mixed_inputs


@pytest.mark.parametrize(
    ("option", "extra"),
    [
        ("bdkd", ()),
        ("pld", ()),
        ("mixup", ("student.batch_size=64",)),
        ("pnd", ("setting=inductive",)),
    ],
)
@pytest.mark.slow
def test_each_new_objective_end_to_end_on_a_synthetic_graph(option, extra, tmp_path, cache_dir):
    metrics = pipeline.run(
        compose_config(tiny_overrides(cache_dir, f"loss={option}", *extra)), tmp_path
    )
    assert metrics["student"]["loss"] == option
    assert metrics["student"]["test_acc"] > 0.5
    assert math.isfinite(metrics["student"]["val_acc"])
    assert json.loads((tmp_path / "metrics.json").read_text()) == metrics
