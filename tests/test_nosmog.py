"""NOSMOG: the representation-similarity term, the adversarial perturbation, the position
stage (positions on the observed graph, new nodes from their neighbours), the student input
they widen (artifact, predict) and end-to-end runs."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from g2m.errors import ConfigError, DataError
from g2m.losses import DistillationBatch, SoftLogitDistillation
from g2m.losses.nosmog import NOSMOGDistillation, representation_similarity
from g2m.models import MLPStudent
from g2m.models.positions import csr, fill_from_neighbours, random_walks
from g2m.run import pipeline
from g2m.run.build import build_run
from g2m.run.positions_stage import PositionStage
from g2m.serve import predict
from g2m.serve.artifact import load_student
from g2m.serve.positions import positions_for_new_nodes
from tests.conftest import compose_config, cpf_split, tiny_overrides


def batch_of(student_logits, teacher_logits, **fields):
    n = student_logits.size(0)
    return DistillationBatch(
        student_logits=student_logits,
        teacher_logits=teacher_logits,
        labels=torch.arange(n) % student_logits.size(1),
        labelled=torch.zeros(n, dtype=torch.bool),
        **fields,
    )


def attached(objective: NOSMOGDistillation, student: MLPStudent) -> NOSMOGDistillation:
    torch.manual_seed(0)
    objective.attach_student(student)
    return objective


# ------------------------------------------------------------ representation similarity


def test_similarity_term_by_hand():
    student = torch.tensor([[1.0, 0.0], [0.0, 2.0]])
    teacher = torch.tensor([[1.0, 1.0, 0.0], [0.0, 1.0, 0.0]])
    # S_t = [[2, 1], [1, 1]], S_s = [[1, 0], [0, 4]]: differences 1, 1, 1, -3
    assert representation_similarity(student, teacher).item() == pytest.approx((1 + 1 + 1 + 9) / 4)


def test_similarity_term_is_zero_for_rotated_copies_and_blind_to_rotations():
    teacher = torch.randn(12, 5)
    rotation, _ = torch.linalg.qr(torch.randn(5, 5))
    assert representation_similarity(teacher @ rotation, teacher).item() < 1e-9
    assert representation_similarity(2 * teacher, teacher).item() > 1.0


# ------------------------------------------------------------ the adversarial perturbation


def perturbation(objective, inputs, student, teacher, seed=0):
    generator = torch.Generator().manual_seed(seed)
    batch = batch_of(student(inputs), teacher, generator=generator)
    return objective.perturb(inputs, student, batch)


def test_the_perturbation_stays_within_epsilon_and_raises_the_loss():
    torch.manual_seed(0)
    student, inputs, teacher = MLPStudent(6, 16, 3), torch.randn(50, 6), torch.randn(50, 3)
    objective = NOSMOGDistillation(epsilon=0.1, attack_steps=5)
    perturbed = perturbation(objective, inputs, student, teacher)
    assert (perturbed - inputs).abs().max() <= 0.1 + 1e-6
    clean = objective.batch_loss(student(inputs), batch_of(student(inputs), teacher))
    attacked = objective.batch_loss(student(perturbed), batch_of(student(inputs), teacher))
    assert attacked > clean
    # the student's parameters collected no gradient while the inputs were attacked
    assert all(p.grad is None for p in student.parameters())
    # seeded: the same generator state gives the same perturbation
    assert torch.equal(perturbed, perturbation(objective, inputs, student, teacher))


def test_one_step_from_a_zero_radius_start_is_a_signed_gradient_step():
    """epsilon = 0 leaves the inputs as they are; with one step the perturbation is the
    clipped sign of the gradient at the random start, written out."""
    torch.manual_seed(1)
    student, inputs, teacher = MLPStudent(4, 8, 3), torch.randn(10, 4), torch.randn(10, 3)
    zero = NOSMOGDistillation(epsilon=0.0)
    assert torch.equal(perturbation(zero, inputs, student, teacher), inputs)
    objective = NOSMOGDistillation(epsilon=0.2, attack_steps=1)
    start = (2 * torch.rand(inputs.shape, generator=torch.Generator().manual_seed(0)) - 1) * 0.2
    delta = start.clone().requires_grad_(True)
    loss = objective.batch_loss(student(inputs + delta), batch_of(student(inputs), teacher))
    (grad,) = torch.autograd.grad(loss, delta)
    expected = inputs + (start + 0.05 * grad.sign()).clamp(-0.2, 0.2)
    torch.testing.assert_close(perturbation(objective, inputs, student, teacher), expected)


# ------------------------------------------------------------ the terms together


def nosmog_batch(student, objective, inputs, teacher_logits, teacher_embedding, seed=0):
    logits, embedding = student(inputs, return_embedding=True)
    batch = batch_of(logits, teacher_logits, student_embedding=embedding,
                     teacher_embedding=teacher_embedding,
                     generator=torch.Generator().manual_seed(seed))  # fmt: skip
    batch.perturbed_student_logits = student(objective.perturb(inputs, student, batch))
    return batch


def test_with_the_extra_weights_at_zero_nosmog_is_glnn():
    torch.manual_seed(0)
    student, inputs = MLPStudent(6, 16, 3), torch.randn(40, 6)
    teacher, embedding = torch.randn(40, 3), torch.randn(40, 7)
    weights = {"kd": 1.0, "similarity": 0.0, "adversarial": 0.0}
    objective = attached(NOSMOGDistillation(label_weight=0.3, weights=weights), student)
    terms = objective(nosmog_batch(student, objective, inputs, teacher, embedding))
    glnn = SoftLogitDistillation(label_weight=0.3)
    expected = glnn.combine(glnn(batch_of(student(inputs), teacher)))
    torch.testing.assert_close(objective.combine(terms), expected)


def test_gradients_reach_the_student_and_its_projection_only():
    torch.manual_seed(0)
    student, inputs = MLPStudent(6, 16, 3), torch.randn(40, 6)
    teacher = torch.randn(40, 3, requires_grad=True)
    embedding = torch.randn(40, 7, requires_grad=True)
    objective = attached(NOSMOGDistillation(label_weight=0.2), student)
    terms = objective(nosmog_batch(student, objective, inputs, teacher, embedding))
    assert set(terms) == {"ce", "kd", "similarity", "adversarial"}
    objective.combine(terms).backward()
    assert teacher.grad is None and embedding.grad is None
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in student.parameters())
    assert all(p.grad is not None for p in objective.projection.parameters())


def test_bad_settings_are_one_config_error():
    with pytest.raises(ConfigError, match="epsilon"):
        NOSMOGDistillation(epsilon=-0.1)
    with pytest.raises(ConfigError, match="attack_steps"):
        NOSMOGDistillation(attack_steps=0)
    with pytest.raises(ConfigError, match="positions.method"):
        PositionStage(method="node2vec")
    with pytest.raises(ConfigError, match="context"):
        PositionStage(walk_length=5, context=5)


# ------------------------------------------------------------ positions


def test_random_walks_follow_edges_and_stay_at_isolated_nodes():
    edges = torch.tensor([[0, 1, 1, 2], [1, 0, 2, 1]])  # a path 0-1-2; node 3 isolated
    rowptr, col = csr(edges, 4)
    walks = random_walks(rowptr, col, torch.tensor([0, 1, 2, 3] * 5), 12, torch.Generator())
    assert walks.shape == (20, 12)
    pairs = zip(walks[:, :-1].flatten().tolist(), walks[:, 1:].flatten().tolist(), strict=True)
    steps = set(pairs)
    assert steps <= {(0, 1), (1, 0), (1, 2), (2, 1), (3, 3)}
    assert (walks[3::4] == 3).all()


def test_new_nodes_take_the_mean_of_their_known_neighbours():
    positions = torch.tensor([[1.0, 0.0], [3.0, 2.0], [0.0, 0.0], [0.0, 0.0]])
    known = torch.tensor([True, True, False, False])
    # node 2 touches 0 and 1 (and the unknown 3, which gives nothing); node 3 only node 2
    edges = torch.tensor([[0, 1, 3, 2, 2], [2, 2, 2, 3, 0]])
    filled = fill_from_neighbours(positions, known, edges)
    torch.testing.assert_close(filled, torch.tensor([[1.0, 0.0], [3.0, 2.0], [2.0, 1.0], [0, 0]]))
    new = positions_for_new_nodes(positions[:2], torch.tensor([[0, 0, 1], [0, 1, 1]]), 3)
    torch.testing.assert_close(new, torch.tensor([[2.0, 1.0], [3.0, 2.0], [0.0, 0.0]]))


def test_inductive_positions_never_see_a_held_out_node(tiny_graph, tmp_path):
    """The positions of observed nodes depend on the observed graph only: changing every
    edge that touches a held-out node changes none of them."""
    from g2m.run.extra import StageContext

    split = cpf_split(tiny_graph, 0, 0.3)
    held = split.test_ind
    stage = PositionStage(channels=4, walk_length=6, context=2, batch_size=16)

    def positions(graph):
        context = StageContext(graph, split, "tiny", None, 0, tmp_path, False, None)
        return stage.train(context).positions

    first = positions(tiny_graph)
    rewired = tiny_graph.clone()
    src, dst = rewired.edge_index
    touches = torch.isin(src, held) | torch.isin(dst, held)
    keep = rewired.edge_index[:, ~touches]
    extra = torch.stack([held.repeat(2), torch.roll(split.observed, 1)[: 2 * held.numel()]])
    rewired.edge_index = torch.cat([keep, extra, extra.flip(0)], 1)
    second = positions(rewired)
    torch.testing.assert_close(first[split.observed], second[split.observed])
    assert not torch.allclose(first[held], second[held])


# ------------------------------------------------------------ runs, artifact, predict


def test_the_student_is_built_for_features_and_positions():
    plan = build_run(compose_config(["loss=nosmog", "positions.channels=16"]))
    assert plan.stages[0].name == "positions" and plan.stages[0].input_channels == 16
    assert NOSMOGDistillation.perturbs_inputs and NOSMOGDistillation.needs_generator
    assert NOSMOGDistillation.extra_stages == ("positions",)


@pytest.mark.slow
@pytest.mark.parametrize("setting", ["transductive", "inductive"])
def test_nosmog_end_to_end_and_its_student_needs_its_positions(setting, tmp_path, cache_dir):
    cfg = compose_config(tiny_overrides(cache_dir, "loss=nosmog", f"setting={setting}",
                                        "positions.channels=8", "store=false"))  # fmt: skip
    metrics = pipeline.run(cfg, tmp_path)
    assert metrics["student"]["test_acc"] > 0.5 and metrics["positions"]["channels"] == 8
    assert json.loads((tmp_path / "metrics.json").read_text()) == metrics
    model, meta = load_student(tmp_path / "student.pt")
    assert meta["input"]["positions"]["channels"] == 8
    assert meta["input"]["num_features"] == meta["input"]["node_features"] + 8 == 24
    # predict: features alone are refused in one line; with the run's positions.pt they
    # reproduce the student's own outputs
    from g2m.data.synthetic import make_csbm

    generator = cfg.dataset.generator
    graph = make_csbm(generator.num_nodes, generator.num_classes, generator.num_features,
                      generator.avg_degree, generator.homophily, generator.feature_signal,
                      seed=generator.seed)  # fmt: skip
    np.save(tmp_path / "x.npy", graph.x.numpy())
    with pytest.raises(DataError, match="--positions") as err:
        predict.with_positions(graph.x, None, meta["input"], tmp_path / "x.npy")
    assert "\n" not in str(err.value)
    inputs = predict.with_positions(graph.x, tmp_path / "positions.pt", meta["input"], "x.npy")
    positions = torch.load(tmp_path / "positions.pt", weights_only=True)["positions"]
    with torch.no_grad():
        expected = model(torch.cat([graph.x, positions], 1)).softmax(-1)
    got = predict.predict(model, inputs, meta["input"]["num_features"])
    torch.testing.assert_close(got, expected)
    predict.main([str(tmp_path), str(tmp_path / "x.npy"), "--positions",
                  str(tmp_path / "positions.pt"), "--out", str(tmp_path / "p.csv")])  # fmt: skip
    assert len((tmp_path / "p.csv").read_text().splitlines()) == graph.num_nodes + 1


def test_positions_given_to_a_student_without_them_are_refused(tmp_path):
    inputs = {"num_features": 4, "preprocessing": "none"}
    with pytest.raises(DataError, match="takes no position features"):
        predict.with_positions(torch.zeros(3, 4), tmp_path / "p.npy", inputs, tmp_path / "x.npy")
