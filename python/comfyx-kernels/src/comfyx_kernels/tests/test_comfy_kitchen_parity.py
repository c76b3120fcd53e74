"""Same results as comfy-kitchen 0.2.40's eager backend where the math is the same."""

import pytest
import torch

import comfyx_kernels

from .helpers import FLOAT_DTYPES, FP8_DTYPES, assert_bit_equal, available_backends, device

kitchen_quant = pytest.importorskip(
    "comfy_kitchen.backends.eager.quantization", reason="pip install comfy-kitchen==0.2.40"
)
kitchen_rope = pytest.importorskip("comfy_kitchen.backends.eager.rope")


@pytest.mark.parametrize("backend", available_backends())
@pytest.mark.parametrize("fp8_dtype", FP8_DTYPES, ids=str)
@pytest.mark.parametrize("dtype", FLOAT_DTYPES, ids=str)
def test_quantize_equals_kitchen_for_power_of_two_scales(backend, dtype, fp8_dtype):
    # With scale = 2^k, kitchen's x * (1/scale) in x's dtype is exact, like our divide.
    x = (torch.randn(129, 65, device=device()) * 100).to(dtype)
    scale = torch.tensor(0.125, device=x.device)
    with comfyx_kernels.use_backend(backend):
        ours = comfyx_kernels.quantize_per_tensor_fp8(x, scale, fp8_dtype)
    assert_bit_equal(ours, kitchen_quant.quantize_per_tensor_fp8(x, scale, fp8_dtype))


def test_kitchen_eager_bf16_defect_is_fixed():
    # Known comfy-kitchen defect: bf16 input times 1/scale rounded to bf16 disagrees with the
    # fp32 divide its own GPU kernels do. Ours follows the fp32 divide exactly.
    torch.manual_seed(0)
    x = torch.randn(256, 512, dtype=torch.bfloat16)
    scale = x.abs().max().float() / 448
    ours = comfyx_kernels.quantize_per_tensor_fp8(x, scale)
    fp32_divide = (x.float() / scale).clamp(-448, 448).to(torch.float8_e4m3fn)
    kitchen = kitchen_quant.quantize_per_tensor_fp8(x, scale)
    assert_bit_equal(ours, fp32_divide)
    assert (kitchen.view(torch.uint8) != fp32_divide.view(torch.uint8)).sum() > 0


@pytest.mark.parametrize("backend", available_backends())
@pytest.mark.parametrize("out_dtype", FLOAT_DTYPES, ids=str)
def test_dequantize_equals_kitchen(backend, out_dtype):
    q = (torch.randn(77, 31, device=device()) * 50).to(torch.float8_e4m3fn)
    scale = torch.tensor(0.0731, device=q.device)
    with comfyx_kernels.use_backend(backend):
        ours = comfyx_kernels.dequantize_per_tensor_fp8(q, scale, out_dtype)
    assert_bit_equal(ours, kitchen_quant.dequantize_per_tensor_fp8(q, scale, out_dtype))


@pytest.mark.parametrize("layout", ["BHLD", "BLHD"])
@pytest.mark.parametrize("dtype", FLOAT_DTYPES, ids=str)
def test_eager_rope_equals_kitchen(layout, dtype):
    b, hq, hk, seq, d = 2, 4, 2, 24, 32
    freqs = torch.randn(b, 1, seq, d // 2, 2, 2)
    if layout == "BLHD":
        freqs = freqs.transpose(1, 2)
    shape = (b, hq, seq, d) if layout == "BHLD" else (b, seq, hq, d)
    xq = torch.randn(shape, dtype=dtype)
    xk = torch.randn(shape[:1] + ((hk, seq) if layout == "BHLD" else (seq, hk)) + (d,)).to(dtype)
    with comfyx_kernels.use_backend("eager"):
        q, k = comfyx_kernels.apply_rope(xq, xk, freqs)
    kq, kk = kitchen_rope.apply_rope(xq, xk, freqs)
    assert_bit_equal(q, kq)
    assert_bit_equal(k, kk)
