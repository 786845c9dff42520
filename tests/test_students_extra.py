"""The extra students: residual and layer-norm MLPs, GLNN's wide MLPw4/MLPw8, and how they ship.

The default MLP must stay the function, the parameters and the ``state_dict`` it was; the
new options add no weights; the fused GPU kernel refuses what it does not cover and the
engine falls back to the eager module for it.
"""

from __future__ import annotations

import pytest
import torch
from torch import nn

from g2m.errors import ConfigError
from g2m.models.student import MLPStudent
from g2m.run.build import build_node
from g2m.serve.artifact import load_student, save_student
from g2m.serve.fused_mlp import PackedMLP
from g2m.serve.inference import (
    StudentInference,
    auto_backend,
    fused_supported,
    triton_available,
)
from tests.conftest import compose_config, tiny_overrides

CUDA = torch.device("cuda")  # only a device name: nothing below touches a GPU


def build_student(option: str, *overrides: str, in_channels: int = 8) -> MLPStudent:
    node = compose_config([f"student={option}", *overrides]).student.model
    return build_node(node, "student.model", in_channels=in_channels, out_channels=3).eval()


@pytest.mark.parametrize(("features", "skips"), [(4, (True, True)), (5, (False, True))])
def test_residual_forward_is_the_formula(features, skips):
    """h_l = h_{l-1} + relu(W_l h_{l-1} + b_l) where the widths match, else the plain layer."""
    student = MLPStudent(features, 4, 2, num_layers=3, residual=True).eval()
    assert student.skips == skips
    x = torch.randn(6, features)
    h = x
    for block, skip in zip(student.hidden, skips, strict=True):
        linear = block[0]
        f = torch.relu(h @ linear.weight.T + linear.bias)
        h = h + f if skip else f
    expected = h @ student.out.weight.T + student.out.bias
    with torch.no_grad():
        logits, embedding = student(x, return_embedding=True)
    torch.testing.assert_close(logits, expected)
    torch.testing.assert_close(embedding, h)


def test_residual_adds_no_weights_and_changes_the_function():
    torch.manual_seed(3)
    plain = MLPStudent(8, 16, 3, num_layers=3).eval()
    residual = MLPStudent(8, 16, 3, num_layers=3, residual=True).eval()
    residual.load_state_dict(plain.state_dict())  # same keys, same shapes
    x = torch.randn(5, 8)
    with torch.no_grad():
        assert not torch.allclose(plain(x), residual(x))


def test_a_student_without_equal_widths_has_no_skip():
    student = MLPStudent(8, 16, 3, num_layers=2, residual=True)
    assert student.skips == (False,)


def test_residual_must_be_a_bool():
    with pytest.raises(ConfigError, match="residual must be true or false"):
        MLPStudent(8, 16, 3, residual="yes")


def test_mlp_res_yaml_has_layer_norm_and_skips():
    student = build_student("mlp-res")
    assert student.init_args | {"in_channels": 0} == {
        "in_channels": 0,
        "hidden_channels": 128,
        "out_channels": 3,
        "num_layers": 3,
        "dropout": 0.0,
        "norm": "layer",
        "residual": True,
    }
    norms = [[type(m) for m in block if isinstance(m, nn.LayerNorm)] for block in student.hidden]
    assert norms == [[nn.LayerNorm], [nn.LayerNorm]]
    assert [block[1].normalized_shape for block in student.hidden] == [(128,), (128,)]
    assert student.skips == (False, True)


def test_layer_norm_only_where_configured():
    assert not any(isinstance(m, nn.LayerNorm) for m in build_student("mlp").modules())
    assert not any(isinstance(m, nn.LayerNorm) for m in build_student("mlpw4").modules())


def old_mlp(features: int, hidden: int, classes: int) -> nn.Module:
    """The default student as it was built before ``residual``: Linear, ReLU, Dropout, Linear."""
    model = nn.Module()
    block = nn.Sequential(nn.Linear(features, hidden), nn.ReLU(), nn.Dropout(0.0))
    model.hidden = nn.ModuleList([block])
    model.out = nn.Linear(hidden, classes)
    return model


def test_the_default_mlp_is_unchanged():
    torch.manual_seed(0)
    reference = old_mlp(8, 128, 3).eval()
    torch.manual_seed(0)
    student = build_student("mlp", "dataset=synthetic")  # the untuned default YAML
    assert student.init_args["residual"] is False and student.skips == (False,)
    old, new = reference.state_dict(), student.state_dict()
    keys = ["hidden.0.0.weight", "hidden.0.0.bias", "out.weight", "out.bias"]
    assert list(new) == list(old) == keys
    for key in old:  # the same initialisation, draw for draw
        assert torch.equal(old[key], new[key]), key
    x = torch.randn(10, 8)
    with torch.no_grad():
        expected = reference.out(reference.hidden[0](x))
        assert torch.equal(student(x), expected)
    # and the explicit old arguments build the same model as the YAML
    torch.manual_seed(0)
    explicit = MLPStudent(8, 128, 3, num_layers=2, dropout=0.0, norm="none").eval()
    assert all(torch.equal(explicit.state_dict()[k], new[k]) for k in new)


@pytest.mark.parametrize(("option", "factor"), [("mlpw4", 4), ("mlpw8", 8)])
def test_wide_yamls_have_their_documented_widths(option, factor):
    for dataset in ("synthetic", "cora", "synthetic-products"):  # untuned, tuned, products
        base = compose_config([f"dataset={dataset}", "student=mlp"]).student
        wide = compose_config([f"dataset={dataset}", f"student={option}"]).student
        assert wide.name == option
        assert wide.model.hidden_channels == factor * base.model.hidden_channels, dataset
        for key in ("num_layers", "dropout", "norm", "residual"):  # the MLP's depth and tuning
            assert wide.model[key] == base.model[key], (dataset, key)
        assert wide.optim == base.optim and wide.batch_size == base.batch_size
    untuned = compose_config(["dataset=synthetic", f"student={option}"]).student.model
    assert untuned.hidden_channels == 128 * factor  # mlp.yaml's 128, scaled


@pytest.mark.parametrize("option", ["mlp", "mlpw4", "mlpw8", "mlp-res"])
def test_artifact_round_trip_with_torch_alone(option, tmp_path):
    student = build_student(option, "dataset=synthetic")
    path = save_student(student, tmp_path / "student.pt", provenance={"student": option})
    loaded, meta = load_student(path)
    assert meta["model_args"] == student.init_args and loaded.skips == student.skips
    x = torch.randn(9, 8)
    with torch.no_grad():
        torch.testing.assert_close(loaded(x), student(x))


def test_an_artifact_from_before_residual_still_loads(tmp_path):
    student = MLPStudent(8, 16, 3).eval()
    path = save_student(student, tmp_path / "student.pt", provenance={})
    state = torch.load(path, weights_only=False)
    del state["model_args"]["residual"]  # as written before the option existed
    torch.save(state, path)
    loaded, _ = load_student(path)
    assert loaded.init_args["residual"] is False
    assert fused_supported(MLPStudent(**state["model_args"]))


@pytest.mark.parametrize(
    ("option", "covered"), [("mlp", True), ("mlpw4", False), ("mlpw8", False), ("mlp-res", False)]
)
def test_which_shipped_students_the_fused_kernel_covers(option, covered):
    student = build_student(option, "dataset=synthetic")
    assert fused_supported(student) is covered
    expected = "fused" if covered and triton_available() else "eager"
    assert auto_backend(student, CUDA) == expected  # the choice on a GPU, made without one
    assert auto_backend(student, torch.device("cpu")) == "eager"


@pytest.mark.parametrize(
    "kwargs",
    [dict(norm="layer", residual=True), dict(norm="none", residual=True), dict(norm="layer")],
)
def test_the_engine_falls_back_for_residual_and_layer_norm_students(kwargs):
    student = MLPStudent(8, 16, 3, num_layers=3, **kwargs).eval()
    assert not fused_supported(student) and auto_backend(student, CUDA) == "eager"
    with pytest.raises(ConfigError, match="residual|layer norm"):  # never fused without skips
        PackedMLP.from_student(student, torch.float32)
    engine = StudentInference(student, "cpu")
    assert engine.backend == "eager"
    x = torch.randn(11, 8)
    with torch.no_grad():
        torch.testing.assert_close(engine(x), student(x))


@pytest.mark.slow
@pytest.mark.parametrize("option", ["mlpw4", "mlpw8", "mlp-res"])
def test_each_new_student_trains_end_to_end(option, tmp_path, cache_dir):
    from g2m.run import pipeline

    cfg = compose_config(tiny_overrides(cache_dir, f"student={option}", "baseline=false"))
    metrics = pipeline.run(cfg, tmp_path)
    assert metrics["student"]["name"] == option and metrics["student"]["val_acc"] > 0
    model, meta = load_student(tmp_path / "student.pt")
    expected = {k: v for k, v in cfg.student.model.items() if k != "_target_"}
    assert {k: meta["model_args"][k] for k in expected} == expected
    assert model(torch.randn(4, meta["input"]["num_features"])).shape == (4, 3)
