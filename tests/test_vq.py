"""VQGraph: soft code assignments, the code term, the tokenizer stage and its artifact."""

from __future__ import annotations

import json

import pytest
import torch

from g2m.errors import ArtifactError, ConfigError
from g2m.lit.codebook import CodebookSystem
from g2m.lit.codebook_stage import CodebookArtifact
from g2m.losses import DistillationBatch
from g2m.losses.vq import CodeDistillation
from g2m.models import MLPStudent
from g2m.models.codebook import GraphTokenizer, code_similarity, soft_assignment
from g2m.run import pipeline
from g2m.run.artifacts import TeacherArtifact
from g2m.run.build import build_run
from g2m.run.extra import DistillationTargets
from tests.conftest import compose_config, cpf_split, tiny_overrides


@pytest.mark.parametrize("similarity", ["cosine", "l2"])
@pytest.mark.parametrize("temperature", [0.05, 1.0, 4.0])
def test_soft_assignments_are_distributions(similarity, temperature):
    assignment = soft_assignment(torch.randn(40, 16), torch.randn(32, 16), temperature, similarity)
    assert assignment.shape == (40, 32)
    assert (assignment >= 0).all()
    torch.testing.assert_close(assignment.sum(-1), torch.ones(40))


def test_similarities_rank_the_nearest_code_first():
    codebook = torch.eye(4)
    embedding = torch.tensor([[0.1, 2.0, 0.0, 0.0], [0.0, 0.0, 0.0, 3.0]])
    for similarity in ("cosine", "l2"):
        assert code_similarity(embedding, codebook, similarity).argmax(-1).tolist() == [1, 3]
    with pytest.raises(ConfigError, match="similarity"):
        code_similarity(embedding, codebook, "dot")


def vq_batch(student_embedding, teacher_embedding, logits=None):
    n = student_embedding.size(0)
    logits = logits if logits is not None else torch.randn(n, 3)
    return DistillationBatch(
        student_logits=logits,
        teacher_logits=logits.detach().clone(),
        labels=torch.zeros(n, dtype=torch.long),
        labelled=torch.zeros(n, dtype=torch.bool),
        student_embedding=student_embedding,
        teacher_embedding=teacher_embedding,
    )


@pytest.mark.parametrize("similarity", ["cosine", "l2"])
def test_code_term_vanishes_when_projected_student_equals_teacher(similarity):
    objective = CodeDistillation(code_temperature=0.1, similarity=similarity)
    objective.attach_codebook(torch.randn(64, 8), student_channels=8)
    with torch.no_grad():  # identity projection: g(h_s) = h_s
        objective.projection.weight.copy_(torch.eye(8))
        objective.projection.bias.zero_()
    teacher = torch.randn(30, 8)
    terms = objective(vq_batch(teacher.clone(), teacher))
    assert terms["code"].abs().item() < 1e-5
    assert terms["kd"].abs().item() < 1e-6
    other = objective(vq_batch(torch.randn(30, 8), teacher))
    assert other["code"].item() > 1e-3


def test_code_term_matches_the_kl_of_the_two_assignments():
    tau = 0.3
    objective = CodeDistillation(code_temperature=tau)
    codebook = torch.randn(16, 4)
    objective.attach_codebook(codebook, student_channels=6)
    student, teacher = torch.randn(10, 6), torch.randn(10, 4)
    r_t = soft_assignment(teacher, codebook, tau)
    r_s = soft_assignment(objective.projection(student), codebook, tau)
    manual = (r_t * (r_t.log() - r_s.log())).sum(-1).mean() * tau**2
    torch.testing.assert_close(objective(vq_batch(student, teacher))["code"], manual)


def test_projection_head_trains_and_the_codebook_stays_frozen():
    objective = CodeDistillation()
    codebook = torch.randn(16, 4, requires_grad=True)
    objective.attach_codebook(codebook, student_channels=6)
    student = torch.randn(10, 6, requires_grad=True)
    teacher = torch.randn(10, 4, requires_grad=True)
    objective.combine(objective(vq_batch(student, teacher))).backward()
    assert objective.projection.weight.grad.abs().sum() > 0
    assert student.grad.abs().sum() > 0
    assert teacher.grad is None and codebook.grad is None
    assert not objective.codebook.requires_grad


def test_objective_refuses_to_run_without_a_codebook():
    with pytest.raises(RuntimeError, match="attach_codebook"):
        CodeDistillation()(vq_batch(torch.randn(3, 4), torch.randn(3, 4)))


def make_tokenizer(graph, size=16, dim=8, graph_head=False):
    from torch_geometric.nn.models import GraphSAGE

    encoder = GraphSAGE(graph.num_features, 16, num_layers=2, out_channels=dim)
    head = GraphSAGE(dim, 16, num_layers=1, out_channels=3) if graph_head else None
    return GraphTokenizer(
        encoder,
        graph.num_features,
        3,
        codebook_size=size,
        kmeans_init=False,
        graph_classifier=head,
    )


def test_only_the_graph_class_head_tells_apart_nodes_that_share_a_code(tiny_graph):
    adj_t = make_tokenizer(tiny_graph).adjacency(tiny_graph.edge_index, tiny_graph.num_nodes)
    codes = torch.randn(4, 8)
    assigned = torch.arange(tiny_graph.num_nodes) % 4
    quantized = codes[assigned]  # every node holds one of 4 codes
    for graph_head in (False, True):
        tokenizer = make_tokenizer(tiny_graph, graph_head=graph_head)
        logits = tokenizer.class_logits(quantized, adj_t)
        assert logits.shape == (tiny_graph.num_nodes, 3)
        same_code = logits[assigned == 0]
        spread = (same_code - same_code[0]).abs().max().item()
        # linear: one logit row per code; graph: it depends on the neighbours' codes too
        assert (spread > 1e-4) == graph_head


def test_codebook_stage_loss_terms_are_finite_and_structure_uses_sampled_pairs(tiny_graph):
    split = cpf_split(tiny_graph, 0, 0.2)
    weights = {"ce": 1.0, "feature": 1.0, "structure": 1.0}
    system = CodebookSystem(
        make_tokenizer(tiny_graph), tiny_graph, split, 0.01, 0.0, weights, edges_per_step=50
    )
    positive, negative = system._pairs()
    assert positive.shape == (2, 50) and negative.shape == (2, 50)
    observed_edges = {tuple(e) for e in system.edge_index.T.tolist()}
    assert all(tuple(e) in observed_edges for e in positive.T.tolist())
    terms = system.loss_terms()
    assert set(terms) == {"ce", "feature", "structure", "commitment"}
    assert all(torch.isfinite(v) for v in terms.values())
    loss = system.training_step(torch.zeros(1), 0)
    loss.backward()
    encoder_grads = [p.grad for p in system.model.encoder.parameters()]
    assert all(g is not None and torch.isfinite(g).all() for g in encoder_grads)


def test_codebook_stage_trains_the_graph_class_head(tiny_graph):
    split = cpf_split(tiny_graph, 0, 0.2)
    weights = {"ce": 1.0, "feature": 0.0, "structure": 0.0}
    system = CodebookSystem(
        make_tokenizer(tiny_graph, graph_head=True), tiny_graph, split, 0.01, 0.0, weights
    )
    system.training_step(torch.zeros(1), 0).backward()
    head_grads = [p.grad for p in system.model.classifier.parameters()]
    assert head_grads and all(g is not None and g.abs().sum() > 0 for g in head_grads)


@pytest.mark.parametrize("override", ["codebook.weights.ce=-1", "~codebook.weights.feature"])
def test_codebook_stage_rejects_bad_weights(override):
    with pytest.raises(ConfigError, match="codebook.weights"):
        build_run(compose_config(["loss=vq", override]))


def test_codebook_artifact_round_trips_and_refuses_a_mismatch(tiny_graph, tmp_path):
    split = cpf_split(tiny_graph, 0, 0.2)
    n = tiny_graph.num_nodes
    embedding = torch.randn(n, 8)
    embedding[split.test_ind] = float("nan")
    artifact = CodebookArtifact(
        torch.randn(16, 8),
        embedding,
        torch.randint(16, (n,)),
        "cosine",
        split,
        "synthetic",
        8,
        metrics={"val_acc": 0.5},
        logits=torch.randn(n, 3),
    )
    loaded = CodebookArtifact.load(artifact.save(tmp_path / "codebook.pt"))
    for name in ("codebook", "embedding", "codes", "logits"):
        torch.testing.assert_close(getattr(loaded, name), getattr(artifact, name), equal_nan=True)
    assert loaded.split.same_as(split) and loaded.metrics == {"val_acc": 0.5}
    rows = loaded.assignments(0.5, split.observed)
    torch.testing.assert_close(rows.sum(-1), torch.ones(split.observed.numel()))
    loaded.check_compatible("synthetic", 8, split)
    with pytest.raises(ArtifactError, match="different split"):
        loaded.check_compatible("synthetic", 8, cpf_split(tiny_graph, 1, 0.2))
    with pytest.raises(ArtifactError, match="not a g2m codebook"):
        torch.save({"version": 1}, tmp_path / "other.pt")
        CodebookArtifact.load(tmp_path / "other.pt")


VQ_TINY = ("loss=vq", "codebook.size=32", "codebook.dim=16", "codebook.max_epochs=20")


@pytest.mark.parametrize("setting", ["transductive", "inductive"])
@pytest.mark.slow
def test_vq_end_to_end_on_a_synthetic_graph(setting, tmp_path, cache_dir):
    cfg = compose_config(tiny_overrides(cache_dir, *VQ_TINY, f"setting={setting}"))
    metrics = pipeline.run(cfg, tmp_path)
    assert metrics["student"]["loss"] == "vq" and metrics["student"]["test_acc"] > 0.5
    assert metrics["codebook"]["size"] == 32 and 1 <= metrics["codebook"]["codes_used"] <= 32
    assert json.loads((tmp_path / "metrics.json").read_text()) == metrics
    artifact = CodebookArtifact.load(tmp_path / "codebook.pt")
    split = artifact.split
    assert artifact.codebook.shape == (32, 16)
    assert torch.isnan(artifact.embedding[split.test_ind]).all()
    assert not torch.isnan(artifact.embedding[split.observed]).any()
    assert (artifact.codes[split.test_ind] == -1).all()
    assert artifact.logits is None  # a linear class head's logits are not soft labels


@pytest.mark.slow
def test_vq_student_reuses_stored_teacher_and_codebook(tmp_path, cache_dir):
    first = tmp_path / "first"
    pipeline.run(compose_config(tiny_overrides(cache_dir, *VQ_TINY)), first)
    reuse = compose_config(
        tiny_overrides(
            cache_dir,
            *VQ_TINY,
            f"teacher.artifact={first / 'teacher.pt'}",
            f"codebook.artifact={first / 'codebook.pt'}",
            "loss.weights.kd=0",
        )
    )
    second = tmp_path / "second"
    metrics = pipeline.run(reuse, second)
    assert not (second / "teacher.pt").exists() and not (second / "codebook.pt").exists()
    assert metrics["codebook"] == json.loads((first / "metrics.json").read_text())["codebook"]


def test_codebook_similarity_is_shared_by_both_sides_by_default():
    cfg = compose_config(["loss=vq", "codebook.similarity=l2"])
    assert cfg.loss.similarity == "l2"
    assert build_run(cfg).objective.similarity == "l2"


@pytest.mark.slow
def test_tokenizer_soft_labels_end_to_end_on_held_out_nodes(tmp_path, cache_dir):
    overrides = (*VQ_TINY, "codebook.classifier=graph", "codebook.soft_labels=tokenizer")
    cfg = compose_config(tiny_overrides(cache_dir, *overrides, "setting=inductive"))
    metrics = pipeline.run(cfg, tmp_path)
    assert metrics["student"]["soft_labels"] == "tokenizer"
    assert metrics["codebook"]["classifier"] == "graph"
    assert metrics["student"]["test_acc"] > 0.5
    artifact = CodebookArtifact.load(tmp_path / "codebook.pt")
    teacher = TeacherArtifact.load(tmp_path / "teacher.pt")
    split = artifact.split
    assert torch.isnan(artifact.logits[split.test_ind]).all()
    observed = artifact.logits[split.observed]
    assert torch.isfinite(observed).all()
    # the student distils the tokenizer's logits, not the GNN teacher's
    plan = build_run(cfg)
    targets = hand_over(plan, teacher, artifact)
    assert targets.logits is artifact.logits and targets.source == "tokenizer"
    assert not torch.equal(observed, teacher.logits[split.observed])
    default = build_run(compose_config(tiny_overrides(cache_dir, *VQ_TINY)))
    assert hand_over(default, teacher, artifact).logits is teacher.logits


def hand_over(plan, teacher, artifact):
    (stage,) = plan.stages
    targets = DistillationTargets(teacher.logits, teacher.embedding)
    return stage.hand_over(artifact, targets, plan.objective, MLPStudent(8, 16, 3))


def test_tokenizer_soft_labels_refuse_a_codebook_without_logits(tiny_graph):
    # what a linear class head (the default) stores, and every codebook saved before logits
    n = tiny_graph.num_nodes
    codes = torch.zeros(n, dtype=torch.long)
    split = cpf_split(tiny_graph, 0, 0.0)
    linear = CodebookArtifact(
        torch.randn(4, 2), torch.randn(n, 2), codes, "cosine", split, "synthetic", 8
    )
    plan = build_run(compose_config(["loss=vq", "codebook.soft_labels=tokenizer"]))
    teacher = DistillationTargets(torch.randn(n, 3), None)
    with pytest.raises(ConfigError, match="Retrain the codebook with codebook.classifier=graph"):
        plan.stages[0].hand_over(linear, teacher, plan.objective, MLPStudent(8, 16, 3))


@pytest.mark.parametrize(
    "override, key",
    [
        ("codebook.classifier=mlp", "codebook.classifier"),
        ("codebook.soft_labels=gnn", "codebook.soft_labels"),
    ],
)
def test_codebook_options_are_checked_before_anything_runs(override, key, tmp_path):
    cfg = compose_config(["loss=vq", override])
    with pytest.raises(ConfigError, match=key):
        pipeline.run(cfg, tmp_path / "run")
    assert not (tmp_path / "run").exists()
