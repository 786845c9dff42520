"""Deployment tools: TorchScript export with parity, prediction from feature files, errors."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
import torch

from g2m.errors import DataError
from g2m.models import MLPStudent
from g2m.serve import export, predict
from g2m.serve.artifact import load_student, save_student


@pytest.fixture
def artifact(tmp_path):
    model = MLPStudent(6, 16, 3, num_layers=3, norm="batch").eval()
    return save_student(model, tmp_path / "student.pt", provenance={"dataset": "toy"})


SHAPES = {  # every student shape the exports must reproduce (6 features, 3 classes)
    "batch-norm": dict(hidden_channels=16, num_layers=3, norm="batch"),
    "residual-layer-norm": dict(hidden_channels=16, num_layers=3, norm="layer", residual=True),
    "residual-every-layer": dict(hidden_channels=6, num_layers=3, residual=True),  # F == H
}


@pytest.fixture(params=sorted(SHAPES))
def shaped_artifact(request, tmp_path):
    """A saved student of each shape, with non-trivial norm statistics and affine terms."""
    torch.manual_seed(1)
    model = MLPStudent(6, out_channels=3, **SHAPES[request.param])
    for module in model.modules():
        if isinstance(module, torch.nn.BatchNorm1d | torch.nn.LayerNorm):
            module.weight.data.uniform_(0.5, 1.5)
            module.bias.data.uniform_(-0.5, 0.5)
        if isinstance(module, torch.nn.BatchNorm1d):
            module.running_mean.uniform_(-1, 1)
            module.running_var.uniform_(0.5, 2.0)
    return save_student(model.eval(), tmp_path / "student.pt", provenance={"dataset": "toy"})


def tool(module: str, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", module, *args], capture_output=True, text=True)


def test_torchscript_export_gives_the_same_logits(shaped_artifact):
    export.main([str(shaped_artifact.parent), "--format", "torchscript"])
    scripted = torch.jit.load(str(shaped_artifact.with_name("student.torchscript.pt")))
    model, _ = load_student(shaped_artifact)
    x = torch.randn(50, 6)
    torch.testing.assert_close(scripted(x), model(x))


@pytest.mark.slow
def test_onnx_export_matches_torch_in_onnx_runtime(shaped_artifact):
    ort = pytest.importorskip("onnxruntime")
    pytest.importorskip("onnxscript")
    export.main([str(shaped_artifact), "--format", "onnx"])
    session = ort.InferenceSession(
        str(shaped_artifact.with_name("student.onnx")), providers=["CPUExecutionProvider"]
    )
    model, _ = load_student(shaped_artifact)
    x = torch.randn(33, 6)  # a batch size the export never saw: the node axis is dynamic
    (logits,) = session.run(None, {"features": x.numpy()})
    np.testing.assert_allclose(logits, model(x).detach().numpy(), atol=1e-5)


@pytest.mark.parametrize("suffix", [".npy", ".csv", ".pt"])
def test_predict_reads_every_format(shaped_artifact, tmp_path, suffix):
    x = torch.randn(7, 6)
    path = tmp_path / f"features{suffix}"
    if suffix == ".npy":
        np.save(path, x.numpy())
    elif suffix == ".csv":
        np.savetxt(path, x.numpy(), delimiter=",")
    else:
        torch.save(x, path)
    out = tmp_path / "pred.csv"
    predict.main([str(shaped_artifact), str(path), "--out", str(out)])
    table = np.loadtxt(out, delimiter=",", skiprows=1)
    model, _ = load_student(shaped_artifact)
    probs = model(x).softmax(-1).detach().numpy()
    assert table.shape == (7, 2 + 3)
    np.testing.assert_array_equal(table[:, 1], probs.argmax(1))
    np.testing.assert_allclose(table[:, 2:], probs, atol=1e-5)


def test_wrong_feature_dimension(artifact):
    model, meta = load_student(artifact)
    with pytest.raises(DataError, match="4 columns but the student expects 6"):
        predict.predict(model, torch.randn(3, 4), meta["input"]["num_features"])


def test_nan_features(artifact):
    model, _ = load_student(artifact)
    x = torch.randn(5, 6)
    x[3, 1] = float("nan")
    with pytest.raises(DataError, match=r"1 rows contain NaN or Inf \(first rows: \[3\]\)"):
        predict.predict(model, x, 6)


@pytest.mark.parametrize(
    ("name", "content", "message"),
    [
        ("features.npy", b"not numpy", "could not be read as features"),
        ("features.txt", b"1,2", "unsupported feature file type"),
        ("missing.npy", None, "Feature file not found"),
    ],
)
def test_unreadable_feature_files(tmp_path, name, content, message):
    path = tmp_path / name
    if content is not None:
        path.write_bytes(content)
    with pytest.raises(DataError, match=message):
        predict.read_features(path)


@pytest.mark.slow
def test_predict_cli_reports_one_line(artifact, tmp_path):
    bad = tmp_path / "x.npy"
    np.save(bad, np.zeros((2, 9), np.float32))
    result = tool("g2m.serve.predict", str(artifact), str(bad), "--out", str(tmp_path / "p.csv"))
    assert result.returncode == 2
    assert result.stderr.strip() == (
        "g2m.serve.predict: error: features have 9 columns but the student expects 6."
    )
    assert not (tmp_path / "p.csv").exists()


@pytest.mark.parametrize("module", ["g2m.serve.export", "g2m.serve.predict"])
@pytest.mark.slow
def test_missing_or_foreign_artifact(module, tmp_path):
    foreign = tmp_path / "foreign.pt"
    torch.save({"state_dict": {}}, foreign)
    features = tmp_path / "x.npy"
    np.save(features, np.zeros((2, 6), np.float32))
    extra = [str(features)] if module == "g2m.serve.predict" else []
    for path, message in (
        (tmp_path / "none.pt", "not found"),
        (foreign, "is not a g2m student artifact"),
    ):
        result = tool(module, str(path), *extra)
        assert result.returncode == 2 and message in result.stderr
        assert "Traceback" not in result.stderr


@pytest.mark.skipif(
    torch.cuda.is_available(), reason="checks the message on a machine without CUDA"
)
@pytest.mark.slow
def test_predict_on_cuda_without_a_gpu_is_refused(artifact, tmp_path):
    features = tmp_path / "x.npy"
    np.save(features, np.zeros((2, 6), np.float32))
    out = tmp_path / "p.csv"
    result = tool(
        "g2m.serve.predict", str(artifact), str(features), "--device", "cuda", "--out", str(out)
    )
    assert result.returncode == 2
    assert result.stderr.strip() == (
        "g2m.serve.predict: error: --device cuda was asked for but no CUDA device is visible."
    )
    assert not out.exists()


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_predict_on_cuda_agrees_with_the_cpu(artifact, tmp_path):
    features = tmp_path / "x.npy"
    np.save(features, np.random.default_rng(0).normal(size=(500, 6)).astype(np.float32))
    for device in ("cpu", "cuda"):
        assert (
            tool(
                "g2m.serve.predict",
                str(artifact),
                str(features),
                "--device",
                device,
                "--out",
                str(tmp_path / f"{device}.csv"),
            ).returncode
            == 0
        )
    cpu, gpu = (
        np.loadtxt(tmp_path / f"{d}.csv", delimiter=",", skiprows=1) for d in ("cpu", "cuda")
    )
    assert (cpu[:, 1] == gpu[:, 1]).mean() > 0.98  # bf16 on the GPU: rare near-ties may flip
    np.testing.assert_allclose(cpu[:, 2:], gpu[:, 2:], atol=2e-2)


def test_predictions_name_the_datasets_own_class_ids(tmp_path):
    model = MLPStudent(4, 8, 3).eval()
    save_student(model, tmp_path / "student.pt", provenance={}, classes=["3", "7", "9"])
    x = torch.randn(6, 4)
    np.save(tmp_path / "x.npy", x.numpy())
    predict.main(
        [str(tmp_path / "student.pt"), str(tmp_path / "x.npy"), "--out", str(tmp_path / "p.csv")]
    )
    rows = (tmp_path / "p.csv").read_text().splitlines()[1:]
    expected = [["3", "7", "9"][int(i)] for i in model(x).argmax(1)]
    assert [row.split(",")[1] for row in rows] == expected
