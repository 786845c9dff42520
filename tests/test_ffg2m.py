"""FF-G2M: incident-edge batching, the low/high-frequency terms and an end-to-end run."""

from __future__ import annotations

import json

import pytest
import torch

from g2m.data.incidence import IncidentEdges
from g2m.lit.student import StudentSystem
from g2m.losses import DistillationBatch, FrequencyDistillation
from g2m.losses.base import kl_divergence
from g2m.models import MLPStudent
from g2m.run import pipeline
from g2m.run.build import build_run
from g2m.run.student_stage import observed_edges as observed_edges_of
from tests.conftest import compose_config, cpf_split, tiny_overrides


def edge_batch(nodes, edges, student_logits, teacher_logits, labelled=None):
    """The DistillationBatch the student stage builds for ``nodes`` (logits over all N)."""
    position, neighbour = edges.gather(nodes)
    return DistillationBatch(
        student_logits=student_logits[nodes],
        teacher_logits=teacher_logits[nodes],
        labels=torch.zeros(nodes.numel(), dtype=torch.long),
        labelled=labelled[nodes] if labelled is not None else torch.zeros_like(nodes).bool(),
        edge_position=position,
        neighbour_student_logits=student_logits[neighbour],
        neighbour_teacher_logits=teacher_logits[neighbour],
    )


def test_gather_returns_exactly_the_out_edges_of_the_batch(tiny_graph):
    edges = IncidentEdges(tiny_graph.edge_index, tiny_graph.num_nodes)
    nodes = torch.tensor([5, 0, 77, 31])
    position, neighbour = edges.gather(nodes)
    got = sorted(zip(nodes[position].tolist(), neighbour.tolist(), strict=True))
    src, dst = tiny_graph.edge_index
    expected = sorted(
        (s, d) for s, d in zip(src.tolist(), dst.tolist(), strict=True) if s in nodes.tolist()
    )
    assert got == expected and len(got) > 0
    assert torch.equal(position, position.sort().values)  # grouped by batch node


def test_self_loops_are_dropped_and_bad_edges_rejected():
    edges = IncidentEdges(torch.tensor([[0, 1, 1], [0, 2, 1]]), 3)
    assert edges.num_edges == 1
    with pytest.raises(Exception, match="refers to node 7"):
        IncidentEdges(torch.tensor([[0], [7]]), 3)


def test_hfd_is_zero_and_lfd_is_the_glnn_term_without_edges():
    n = 30
    student, teacher = torch.randn(n, 4), torch.randn(n, 4)
    no_edges = IncidentEdges(torch.zeros(2, 0, dtype=torch.long), n)
    terms = FrequencyDistillation()(edge_batch(torch.arange(n), no_edges, student, teacher))
    assert terms["high"].item() == 0.0
    # only self-loops left: LFD is GLNN's node-wise KL (T = 1), and so is the kd term
    torch.testing.assert_close(terms["low"], kl_divergence(student, teacher))
    torch.testing.assert_close(terms["kd"], terms["low"])


def test_terms_match_a_direct_edge_loop_on_a_path_graph():
    # path 0-1-2, both directions
    edges = IncidentEdges(torch.tensor([[0, 1, 1, 2], [1, 0, 2, 1]]), 3)
    student, teacher = torch.randn(3, 5), torch.randn(3, 5)
    tau = 1.7
    terms = FrequencyDistillation(temperature=tau)(
        edge_batch(torch.arange(3), edges, student, teacher)
    )

    def kl(p_logits, q_logits):  # KL(softmax(p) || softmax(q))
        p = torch.softmax(p_logits, -1)
        return (p * (p.log() - torch.log_softmax(q_logits, -1))).sum()

    pairs = [(0, 1), (1, 0), (1, 2), (2, 1)]
    low = sum(kl(teacher[j], student[i]) for i, j in pairs + [(0, 0), (1, 1), (2, 2)]) / 7
    high = (
        sum(
            kl((teacher[i] - teacher[j]).abs() / tau, (student[i] - student[j]).abs() / tau)
            for i, j in pairs
        )
        / 4
    )
    torch.testing.assert_close(terms["low"], low)
    torch.testing.assert_close(terms["high"], high)


def test_mini_batch_terms_add_up_to_the_full_batch_terms(tiny_graph):
    n = tiny_graph.num_nodes
    edges = IncidentEdges(tiny_graph.edge_index, n)
    student, teacher = torch.randn(n, 3), torch.randn(n, 3)
    objective = FrequencyDistillation(temperature=1.3)
    full = objective(edge_batch(torch.arange(n), edges, student, teacher))
    low_sum, high_sum = 0.0, 0.0
    for nodes in torch.randperm(n).split(17):
        part = objective(edge_batch(nodes, edges, student, teacher))
        num_edges = edges.gather(nodes)[0].numel()
        low_sum += part["low"] * (nodes.numel() + num_edges)
        high_sum += part["high"] * num_edges
    torch.testing.assert_close(low_sum / (n + edges.num_edges), full["low"])
    torch.testing.assert_close(high_sum / edges.num_edges, full["high"])


def test_gradients_reach_only_the_student(tiny_graph):
    n = tiny_graph.num_nodes
    model = MLPStudent(8, 16, 3)
    teacher = torch.randn(n, 3, requires_grad=True)
    edges = IncidentEdges(tiny_graph.edge_index, n)
    labelled = torch.zeros(n, dtype=torch.bool)
    labelled[:10] = True
    objective = FrequencyDistillation(label_weight=0.2)
    batch = edge_batch(torch.arange(40), edges, model(tiny_graph.x), teacher, labelled)
    terms = objective(batch)
    for name in ("low", "high"):
        assert terms[name].requires_grad and terms[name].item() > 0
    objective.combine(terms).backward()
    assert teacher.grad is None
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in model.parameters())


def test_student_stage_feeds_incident_edges_with_the_teachers_neighbour_outputs(tiny_graph):
    n = tiny_graph.num_nodes
    split = cpf_split(tiny_graph, 0, 0.2)
    teacher = torch.randn(n, 3)
    teacher[split.test_ind] = float("nan")
    observed_edges = observed_edges_of(tiny_graph, split)
    held_out = torch.zeros(n, dtype=torch.bool)
    held_out[split.test_ind] = True
    assert not held_out[observed_edges].any()
    seen = []

    class Recording(FrequencyDistillation):
        def distillation_terms(self, batch):
            seen.append(batch)
            return super().distillation_terms(batch)

    system = StudentSystem(
        MLPStudent(8, 16, 3),
        Recording(),
        tiny_graph.x,
        tiny_graph.y,
        teacher,
        None,
        split,
        lr=0.01,
        weight_decay=0.0,
        batch_size=32,
        edge_index=observed_edges,
    )
    idx = split.observed[:32]
    loss = system.training_step(idx, 0)
    assert torch.isfinite(loss)
    batch = seen[-1]
    position, neighbour = IncidentEdges(observed_edges, n).gather(idx)
    assert torch.equal(batch.edge_position, position)
    assert torch.equal(batch.neighbour_teacher_logits, teacher[neighbour])
    system.eval()  # no dropout: the neighbour rows are the student's outputs at the neighbours
    system.training_step(idx, 1)
    torch.testing.assert_close(
        seen[-1].neighbour_student_logits, system.model(tiny_graph.x[neighbour])
    )


def test_student_stage_refuses_an_edge_objective_without_edges(tiny_graph):
    split = cpf_split(tiny_graph, 0, 0.0)
    with pytest.raises(Exception, match="needs the graph's edges"):
        StudentSystem(
            MLPStudent(8, 16, 3),
            FrequencyDistillation(),
            tiny_graph.x,
            tiny_graph.y,
            torch.randn(tiny_graph.num_nodes, 3),
            None,
            split,
            lr=0.01,
            weight_decay=0.0,
            batch_size=32,
        )


@pytest.mark.parametrize(("setting", "batch_size"), [("transductive", "64"), ("inductive", "null")])
@pytest.mark.slow
def test_ffg2m_end_to_end_on_a_synthetic_graph(setting, batch_size, tmp_path, cache_dir):
    overrides = tiny_overrides(
        cache_dir, "loss=ffg2m", f"setting={setting}", f"student.batch_size={batch_size}"
    )
    metrics = pipeline.run(compose_config(overrides), tmp_path)
    assert metrics["student"]["loss"] == "ffg2m"
    assert metrics["student"]["test_acc"] > 0.5
    assert json.loads((tmp_path / "metrics.json").read_text()) == metrics


def test_ablations_are_weight_overrides():
    cfg = compose_config(["loss=ffg2m", "loss.weights.high=0"])
    assert dict(cfg.loss.weights) == {"kd": 0.0, "low": 1.0, "high": 0.0}
    objective = build_run(cfg).objective
    terms = {"ce": torch.tensor(1.0), "kd": torch.tensor(5.0)}
    terms |= {"low": torch.tensor(2.0), "high": torch.tensor(7.0)}
    lam = cfg.loss.label_weight
    assert objective.combine(terms).item() == pytest.approx(lam * 1 + (1 - lam) * 2.0)
