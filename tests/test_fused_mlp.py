"""The fused student kernel: packing (batch norm folded, padding) and the kernel's math.

Packing is checked in torch everywhere. The Triton kernel is checked on the CPU through
Triton's interpreter (in a subprocess, as ``TRITON_INTERPRET`` must be set before Triton is
imported; fp16/fp32 operands, which the interpreter reads correctly) and, on a GPU, in bf16.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
import torch

from g2m.errors import ConfigError
from g2m.models.student import MLPStudent
from g2m.serve.fused_mlp import PackedMLP, linear_layers
from g2m.serve.inference import StudentInference, triton_available

SHAPES = [  # (num_layers, norm, features, hidden, classes): odd sizes exercise the padding
    (2, "none", 37, 64, 5),
    (3, "batch", 100, 256, 47),
    (4, "none", 20, 100, 3),
    (3, "batch", 130, 128, 10),
]


def make_student(num_layers, norm, features, hidden, classes, seed=0) -> MLPStudent:
    torch.manual_seed(seed)
    student = MLPStudent(features, hidden, classes, num_layers=num_layers, norm=norm).eval()
    for module in student.modules():  # non-trivial running statistics and affine terms
        if isinstance(module, torch.nn.BatchNorm1d):
            module.running_mean.uniform_(-1, 1)
            module.running_var.uniform_(0.5, 2.0)
            module.weight.data.uniform_(0.5, 1.5)
            module.bias.data.uniform_(-0.5, 0.5)
    return student


def relative_error(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a.float() - b.float()).norm() / b.float().norm())


@pytest.mark.parametrize("shape", SHAPES)
def test_packed_reference_equals_the_student_in_fp32(shape):
    student = make_student(*shape)
    x = torch.randn(50, shape[2])
    with torch.no_grad():
        expected = student(x)
    packed = PackedMLP.from_student(student, torch.float32)
    assert relative_error(packed.reference(x), expected) < 1e-5


def test_batch_norm_is_folded_into_the_linear_layer():
    student = make_student(2, "batch", 6, 8, 3)
    (weight, bias), _ = linear_layers(student)
    x = torch.randn(10, 6)
    with torch.no_grad():
        expected = student.hidden[0][1](student.hidden[0][0](x))  # linear then batch norm
    torch.testing.assert_close(x @ weight.T + bias, expected, rtol=1e-5, atol=1e-5)


def test_widths_are_padded_to_powers_of_two_with_zeros():
    packed = PackedMLP.from_student(make_student(3, "none", 37, 100, 5), torch.float32)
    assert packed.first.shape == (128, 128) and packed.last.shape == (128, 64)
    assert packed.first[37:].abs().sum() == 0 and packed.last[:, 5:].abs().sum() == 0
    assert packed.first_bias[100:].abs().sum() == 0


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        (dict(num_layers=1), "at least one hidden layer"),
        (dict(norm="layer"), "layer norm"),
        (dict(num_layers=3, residual=True), "residual"),
        (dict(hidden_channels=512), "up to 256"),
    ],
)
def test_unsupported_students_are_refused(kwargs, message):
    args = dict(in_channels=8, hidden_channels=16, out_channels=3, num_layers=2) | kwargs
    with pytest.raises(ConfigError, match=message):
        PackedMLP.from_student(MLPStudent(**args).eval())


def test_fused_backend_needs_a_gpu():
    with pytest.raises(ConfigError, match="CUDA"):
        StudentInference(make_student(2, "none", 8, 16, 3), "cpu", backend="fused")


def test_cuda_graphs_need_a_gpu():
    with pytest.raises(ConfigError, match="cuda_graph=True needs a CUDA device"):
        StudentInference(make_student(2, "none", 8, 16, 3), "cpu", cuda_graph=True)


def test_auto_backend_on_cpu_is_the_fp32_student():
    student = make_student(3, "batch", 12, 32, 4)
    engine = StudentInference(student, "cpu")
    x = torch.randn(20, 12)
    assert engine.backend == "eager" and engine.dtype == torch.float32
    with torch.no_grad():
        torch.testing.assert_close(engine(x), student(x))


INTERPRETER_CHECK = """
import json, sys, torch
from g2m.serve.fused_mlp import PackedMLP
from g2m.serve.fused_mlp_triton import fused_mlp
from tests.test_fused_mlp import SHAPES, make_student, relative_error
errors = []
for shape in SHAPES:
    student = make_student(*shape)
    x = torch.randn(45, shape[2])
    for dtype in (torch.float32, torch.float16):
        packed = PackedMLP.from_student(student, dtype)
        runs = [  # both kernels; the pointer kernel both ways through the chained layers
            ("pointer", dict(BLOCK_M=16, BLOCK_K=32, BLOCK_H=32, PIPELINED=False)),
            ("pointer", dict(BLOCK_M=16, BLOCK_K=32, BLOCK_H=32, PIPELINED=True)),
            ("tma", dict(BLOCK_M=16, BLOCK_K=32, BLOCK_H=32)),
            ("tma", None),  # the autotuned TMA entry point
        ]
        for kernel, config in runs:
            out = torch.full((45, shape[4]), float("nan"))
            fused_mlp(packed, x, out=out, config=config, kernel=kernel)
            error = relative_error(out, packed.reference(x))
            errors.append([str(dtype), error, bool(out.isfinite().all())])
        out = fused_mlp(packed, x)  # the autotuned default entry point
        errors.append([str(dtype), relative_error(out, packed.reference(x)), True])
print(json.dumps(errors))
"""


@pytest.mark.skipif(not triton_available(), reason="Triton is not installed")
@pytest.mark.slow
def test_kernel_matches_the_reference_in_the_triton_interpreter():
    env = {**os.environ, "TRITON_INTERPRET": "1", "PYTHONWARNINGS": "ignore"}
    result = subprocess.run(
        [sys.executable, "-c", INTERPRETER_CHECK],
        capture_output=True,
        text=True,
        env=env,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    checks = json.loads(result.stdout.strip().splitlines()[-1])
    assert len(checks) == 2 * 5 * len(SHAPES)
    for dtype, error, finite in checks:
        assert finite, "the kernel left output rows unwritten"
        # same operands, fp32 accumulation; fp16 hidden layers round where sums are reordered
        assert error < (1e-5 if dtype == "torch.float32" else 1e-4), (dtype, error)


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
@pytest.mark.skipif(not triton_available(), reason="Triton is not installed")
@pytest.mark.parametrize(
    "kernel, config",
    [
        ("pointer", dict(BLOCK_M=64, BLOCK_K=64, BLOCK_H=64, PIPELINED=False, num_warps=4)),
        ("pointer", dict(BLOCK_M=64, BLOCK_K=64, BLOCK_H=64, PIPELINED=True, num_warps=4)),
        ("tma", dict(BLOCK_M=64, BLOCK_K=128, BLOCK_H=64, num_warps=4)),
        ("tma", dict(BLOCK_M=128, BLOCK_K=64, BLOCK_H=128, num_warps=8)),
        ("tma", None),
    ],
)
@pytest.mark.parametrize("shape", SHAPES)
def test_fused_bf16_kernel_on_gpu(shape, kernel, config):
    from g2m.serve.fused_mlp_triton import fused_mlp, tma_supported

    if kernel == "tma" and not tma_supported(torch.device("cuda")):
        pytest.skip("tensor-descriptor loads need compute capability 9.0")
    student = make_student(*shape).to("cuda")
    packed = PackedMLP.from_student(student, torch.bfloat16)
    for rows in (1, 1000, 70001):  # partial tiles, many programs
        x = torch.randn(rows, shape[2], device="cuda")
        out = torch.full((rows, shape[4]), float("nan"), device="cuda")
        fused_mlp(packed, x, out=out, config=config, kernel=kernel)
        with torch.no_grad():
            expected = student(x)
        assert bool(out.isfinite().all()), "rows left unwritten"
        assert relative_error(out, expected) < 2e-2  # bf16 operands, fp32 accumulation
        assert relative_error(out, packed.reference(x)) < 5e-3


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
@pytest.mark.skipif(not triton_available(), reason="Triton is not installed")
def test_autotuned_fused_backend_on_gpu():
    student = make_student(3, "batch", 100, 256, 47)
    engine = StudentInference(student, "cuda")
    assert engine.backend == "fused" and engine.dtype == torch.bfloat16
    x = torch.randn(5000, 100, device="cuda")
    with torch.no_grad():
        expected = student.to("cuda")(x)
    assert relative_error(engine(x), expected) < 2e-2


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
@pytest.mark.skipif(not triton_available(), reason="Triton is not installed")
@pytest.mark.parametrize("backend", ["fused", "eager"])
def test_cuda_graph_replays_follow_the_input(backend):
    student = make_student(3, "batch", 100, 256, 47)
    graphed = StudentInference(student, "cuda", backend, cuda_graph=True)
    plain = StudentInference(student, "cuda", backend)
    x = torch.randn(3000, 100, device="cuda")
    torch.testing.assert_close(graphed(x), plain(x))  # eager warm-up
    replayed = graphed(x)  # captured, then replayed
    torch.testing.assert_close(replayed, plain(x))
    x.mul_(-2.0)  # the graph reads the tensor's memory as it is now
    again = graphed(x)
    assert again.data_ptr() == replayed.data_ptr()  # the same output, overwritten
    torch.testing.assert_close(again, plain(x))
    y = torch.randn(500, 100, device="cuda")  # another input gets a graph of its own
    for _ in range(3):
        torch.testing.assert_close(graphed(y), plain(y))
    torch.testing.assert_close(graphed(x), plain(x))


RESIDENT_CONFIGS = [  # both bias modes, HC below H, a 4-warp tile; literal: no Gluon import
    dict(BLOCK_M=128, HC=128, num_warps=8, BIAS_SMEM=False),
    dict(BLOCK_M=128, HC=256, num_warps=8, BIAS_SMEM=True),
    dict(BLOCK_M=64, HC=64, num_warps=4, BIAS_SMEM=True),
    None,  # autotuned
]


@pytest.mark.skipif(not triton_available(), reason="Triton is not installed")
def test_resident_kernel_refuses_what_it_cannot_run():
    from g2m.serve.fused_mlp_triton import fused_mlp

    packed = PackedMLP.from_student(make_student(3, "batch", 100, 256, 47), torch.float32)
    with pytest.raises(ValueError, match="kernel=.resident. needs"):  # a GPU, or Gluon
        fused_mlp(packed, torch.randn(10, 100), kernel="resident")


@pytest.mark.skipif(not triton_available(), reason="Triton is not installed")
@pytest.mark.parametrize("bias_smem", [False, True])
@pytest.mark.slow
def test_resident_kernel_compiles_for_hopper_without_a_gpu(bias_smem):
    """Triton compiles for a target it is not running on (its own ptxas): a CPU machine can
    check that the Gluon kernel builds for sm_90, uses wgmma and fits in shared memory."""
    try:
        import triton
        from triton.backends.compiler import GPUTarget
        from triton.experimental.gluon._runtime import GluonASTSource

        from g2m.serve import fused_mlp_gluon
    except ImportError as err:
        pytest.skip(f"this Triton has no Gluon: {err}")
    kernel = fused_mlp_gluon.resident_mlp3_kernel
    cfg = dict(BLOCK_M=128, HC=128, num_warps=8, BIAS_SMEM=bias_smem)
    constants = fused_mlp_gluon.kernel_constants(100, 47, 128, 256, 64, cfg)  # products size
    weights = {"w1_ptr", "w2_ptr", "w3_ptr"}
    signature = {
        name: "*bf16" if name in weights else "*fp32" if name.endswith("_ptr") else "i32"
        for name in kernel.arg_names
    } | dict.fromkeys(constants, "constexpr")
    constexprs = {(kernel.arg_names.index(name),): value for name, value in constants.items()}
    compiled = triton.compile(
        GluonASTSource(kernel, signature, constexprs),
        target=GPUTarget("cuda", 90, 32),
        options={"num_warps": 8},
    )
    assert "wgmma.mma_async" in compiled.asm["ptx"]
    assert compiled.metadata.shared <= fused_mlp_gluon.SHARED_MEMORY_BYTES
    # the weights (and in shared-bias mode the biases) are resident: 224 KB (+ 2.3 KB)
    assert compiled.metadata.shared >= 2 * (128 * 256 + 256 * 256 + 256 * 64)


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
@pytest.mark.skipif(not triton_available(), reason="Triton is not installed")
@pytest.mark.parametrize("config", RESIDENT_CONFIGS)
@pytest.mark.parametrize(
    "shape", [s for s in SHAPES if s[0] == 3] + [(3, "none", 64, 64, 7), (3, "batch", 17, 128, 64)]
)
def test_resident_kernel_on_gpu(shape, config):
    from g2m.serve.fused_mlp_gluon import supported
    from g2m.serve.fused_mlp_triton import fused_mlp

    student = make_student(*shape).to("cuda")
    packed = PackedMLP.from_student(student, torch.bfloat16)
    if not supported(packed, torch.device("cuda")):
        pytest.skip("the resident kernel needs compute capability 9.x")
    for rows in (1, 1000, 70001):  # partial tiles, more tiles than programs
        for dtype in (torch.float32, torch.bfloat16):
            x = torch.randn(rows, shape[2], device="cuda").to(dtype)
            out = torch.full((rows, shape[4]), float("nan"), device="cuda")
            fused_mlp(packed, x, out=out, config=config, kernel="resident")
            with torch.no_grad():
                expected = student(x.float())
            assert bool(out.isfinite().all()), "rows left unwritten"
            assert relative_error(out, expected) < 2e-2  # bf16 operands, fp32 accumulation
            assert relative_error(out, packed.reference(x)) < 5e-3
