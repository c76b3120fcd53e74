"""NVFP4 / MXFP8 GEMMs and linear layers against float64 products of the dequantized operands.

Tolerances: the kernels multiply the exact dequantized values (e2m1 · block scale is exact in
bf16; fp8 · 2^k is exact) and accumulate in float32, so their error is the output's rounding:
2^-8 relative for bfloat16 outputs (bounded by 4e-3 of the output norm here), accumulation
order for float32 outputs (1e-5). The MXFP8 GEMM's "promote" variant multiplies each 32-element
block on fp8 tensor cores, which on Hopper sum a block's products with about 14 bits of precision
before the float32 accumulator takes them (DeepSeek-V3's H800 finding): measured 4.5e-5 relative
for float32 outputs on an H100, so its float32 bound is 2e-4.
"""

import pytest
import torch

import comfyx_kernels as cx
from comfyx_kernels import blockscaled_linear as gemm_linear
from comfyx_kernels.backends.eager_blockscaled import (
    dequantize_mxfp8_exact,
    dequantize_nvfp4_exact,
)
from comfyx_kernels.blockscaled import nvfp4_tensor_scale
from comfyx_kernels.registry import dispatch

from .helpers import device, triton_param

triton = pytest.importorskip("triton", reason="the GEMM variants are Triton configs")
gemm = pytest.importorskip("comfyx_kernels.backends.triton_gemm_kernels")

BF16_BOUND, F32_BOUND = 4e-3, 1e-5
FP8_MMA_F32_BOUND = 2e-4
# (M, K, N): tiny M (one token), M not a multiple of any tile, K with a partial last tile.
GEMM_SHAPES = [(1, 64, 48), (33, 96, 70), (130, 160, 64)]


def _force_flag(monkeypatch, kernel, lists: tuple[str, ...], flag: str, value: bool) -> None:
    """`kernel` runs one config, with `flag` = value (so both code paths get tested, without
    autotuning every test shape on a GPU)."""
    for name in lists:
        c = getattr(gemm, name)[0]
        config = triton.Config(
            {**c.kwargs, flag: value}, num_warps=c.num_warps, num_stages=c.num_stages
        )
        monkeypatch.setattr(gemm, name, [config])
    monkeypatch.setattr(kernel, "cache", {})  # the autotuner's choice per shape, made anew


@pytest.fixture(params=[True, False], ids=["swap", "direct"])
def nvfp4_variant(request, monkeypatch):
    lists = ("_SMALL_M", "_LARGE_M", "INTERPRETED_NVFP4")
    _force_flag(monkeypatch, gemm.nvfp4_weight_gemm_kernel, lists, "SWAP", request.param)


@pytest.fixture(params=[True, False], ids=["promote", "bf16"])
def mxfp8_variant(request, monkeypatch):
    _force_flag(
        monkeypatch,
        gemm.mxfp8_gemm_kernel,
        ("_MXFP8", "INTERPRETED_MXFP8"),
        "PROMOTE",
        request.param,
    )


def relative_error(actual: torch.Tensor, reference: torch.Tensor) -> float:
    reference = reference.double().cpu()
    return float((actual.double().cpu() - reference).norm() / reference.norm())


def nvfp4_weight(n: int, k: int, hi_first: bool = True):
    w = torch.randn(n, k, device=device()) / k**0.5
    scale = nvfp4_tensor_scale(w)
    q, s = cx.quantize_nvfp4(w, scale, hi_first=hi_first)
    return q, s, scale


@pytest.mark.parametrize("hi_first", [True, False])
@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16], ids=str)
@pytest.mark.parametrize(("m", "k", "n"), GEMM_SHAPES)
@pytest.mark.parametrize("backend", triton_param())
def test_nvfp4_weight_gemm_matches_dequantized_product(
    backend, m, k, n, dtype, hi_first, nvfp4_variant
):
    q, s, scale = nvfp4_weight(n, k, hi_first)
    x = torch.randn(m, k, device=device(), dtype=dtype)
    bias = torch.randn(n, device=device(), dtype=dtype)
    args = {"weight": q, "weight_scale": s, "weight_scale_2": scale, "bias": bias}
    out = dispatch("linear_nvfp4_weight", backend, x=x, hi_first=hi_first, **args)
    assert out.shape == (m, n) and out.dtype == dtype
    exact = x.double() @ dequantize_nvfp4_exact(q, scale, s, hi_first).T + bias.double()
    assert relative_error(out, exact) < BF16_BOUND
    # The wrong nibble order must show: the test can fail.
    swapped = dispatch("linear_nvfp4_weight", backend, x=x, hi_first=not hi_first, **args)
    assert relative_error(swapped, exact) > 0.1


@pytest.mark.parametrize("out_dtype", [torch.float32, torch.bfloat16], ids=str)
@pytest.mark.parametrize(("m", "k", "n"), GEMM_SHAPES)
@pytest.mark.parametrize("backend", triton_param())
def test_mxfp8_gemm_matches_dequantized_product(
    backend, m, k, n, out_dtype, mxfp8_variant, request
):
    a = torch.randn(m, k, device=device())
    a[:, :32] *= 64  # block scales that differ along K
    b = torch.randn(n, k, device=device())
    qa, sa = cx.quantize_mxfp8(a)
    qb, sb = cx.quantize_mxfp8(b)
    bias = torch.randn(n, device=device())
    out = cx.scaled_mm_mxfp8(qa, qb, sa, sb, bias, out_dtype, backend=backend)
    exact = dequantize_mxfp8_exact(qa, sa) @ dequantize_mxfp8_exact(qb, sb).T + bias.double()
    promoted = request.node.callspec.params["mxfp8_variant"]
    f32_bound = FP8_MMA_F32_BOUND if promoted and str(device()).startswith("cuda") else F32_BOUND
    bound = f32_bound if out_dtype == torch.float32 else BF16_BOUND
    assert relative_error(out, exact) < bound


def test_eager_scaled_mm_nvfp4_is_the_dequantized_product():
    qa, sa, ta = nvfp4_weight(20, 64)
    qb, sb, tb = nvfp4_weight(24, 64)
    out = cx.scaled_mm_nvfp4(qa, qb, ta, tb, sa, sb, out_dtype=torch.float32, backend="eager")
    exact = dequantize_nvfp4_exact(qa, ta, sa, True) @ dequantize_nvfp4_exact(qb, tb, sb, True).T
    assert relative_error(out, exact) < F32_BOUND


@pytest.mark.skipif(
    not torch.cuda.is_available() or torch.cuda.get_device_capability() < (10, 0),
    reason="native block-scaled GEMMs need sm_100+",
)
def test_native_gemms_match_eager():
    qa, sa, ta = nvfp4_weight(256, 512)
    qb, sb, tb = nvfp4_weight(384, 512)
    native = cx.scaled_mm_nvfp4(qa, qb, ta, tb, sa, sb, backend="cuda")
    reference = cx.scaled_mm_nvfp4(qa, qb, ta, tb, sa, sb, backend="eager")
    assert relative_error(native, reference) < BF16_BOUND
    a, b = cx.quantize_mxfp8(torch.randn(256, 512, device="cuda"))
    c, d = cx.quantize_mxfp8(torch.randn(384, 512, device="cuda"))
    native = cx.scaled_mm_mxfp8(a, c, b, d, backend="cuda")
    assert relative_error(native, cx.scaled_mm_mxfp8(a, c, b, d, backend="eager")) < BF16_BOUND


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float32], ids=str)
def test_nvfp4_linear_pads_k_drops_padded_rows_and_names_its_path(dtype):
    # A 50 x 40 layer: stored as 64 x 48 (rows and K padded to 16).
    w = torch.randn(50, 40, device=device())
    q, s = cx.quantize_nvfp4(w, nvfp4_tensor_scale(w), pad_16x=True)
    scale = nvfp4_tensor_scale(w)
    x = torch.randn(2, 3, 40, device=device(), dtype=dtype)
    bias = torch.randn(50, device=device(), dtype=dtype)
    out = cx.nvfp4_linear(x, q, s, scale, bias, out_features=50)
    assert out.shape == (2, 3, 50) and out.dtype == dtype
    w_exact = dequantize_nvfp4_exact(q, scale, s, True)[:50, :40]
    exact = x.double() @ w_exact.T + bias.double()
    assert relative_error(out, exact) < BF16_BOUND
    path = cx.nvfp4_linear_path(x)
    if x.device.type == "cpu":
        assert path.name == "fallback" and "activation on cpu" in path.reason
    with pytest.raises(ValueError, match="only 48"):
        cx.nvfp4_linear(torch.randn(2, 64, device=device(), dtype=dtype), q, s, scale)


def test_mxfp8_linear_matches_dequantized_weight():
    w = torch.randn(70, 96, device=device())
    q, s = cx.quantize_mxfp8(w, pad_32x=True)
    x = torch.randn(5, 96, device=device(), dtype=torch.bfloat16)
    out = cx.mxfp8_linear(x, q, s, out_features=70)
    assert out.shape == (5, 70)
    exact = x.double() @ dequantize_mxfp8_exact(q, s)[:70].T
    # On GPUs the activation is quantized to MXFP8 too (a few % error); the fallback is exact.
    bound = BF16_BOUND if cx.mxfp8_linear_path(x).name == "fallback" else 0.05
    assert relative_error(out, exact) < bound


@pytest.mark.parametrize("static_scale", [False, True], ids=["dynamic", "static"])
@pytest.mark.parametrize(("m", "k", "n"), GEMM_SHAPES)
@pytest.mark.parametrize("backend", triton_param())
def test_w4a8_gemm_matches_its_reference(backend, m, k, n, static_scale, nvfp4_variant):
    q, s, scale = nvfp4_weight(n, k)
    x = torch.randn(m, k, device=device(), dtype=torch.bfloat16)
    bias = torch.randn(n, device=device(), dtype=torch.bfloat16)
    input_scale = (x.abs().amax().float() / 448) if static_scale else None
    args = {"x": x, "weight": q, "weight_scale": s, "weight_scale_2": scale, "bias": bias}
    out = dispatch("linear_nvfp4_weight_fp8", backend, **args, input_scale=input_scale)
    reference = dispatch("linear_nvfp4_weight_fp8", "eager", **args, input_scale=input_scale)
    assert relative_error(out, reference) < BF16_BOUND
    # Against the exact W4A16 product: the fp8 roundings of activation and weight, a few %.
    exact = x.double() @ dequantize_nvfp4_exact(q, scale, s, True).T + bias.double()
    assert 1e-3 < relative_error(out, exact) < 0.05


def test_nvfp4_activation_choice():
    assert gemm_linear.NVFP4_ACTIVATION == "bf16"
    with pytest.raises(ValueError, match="activation must be bf16 or fp8"):
        cx.nvfp4_linear_path(torch.randn(2, 16), "fp4")
