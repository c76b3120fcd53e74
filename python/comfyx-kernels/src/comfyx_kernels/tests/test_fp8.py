import pytest
import torch

import comfyx_kernels
from comfyx_kernels.backends import eager

from .helpers import FLOAT_DTYPES, FP8_DTYPES, assert_bit_equal, backend_params, device

SHAPES = [(1,), (15,), (33, 17), (4, 1000), (3, 5, 129)]  # tails: numel % 16 != 0


def make_input(shape, dtype, fp8_dtype):
    # Spans the fp8 range and beyond (saturation), with tiny values (subnormals).
    limit = torch.finfo(fp8_dtype).max
    x = torch.randn(shape, device=device()) * limit / 4
    x.view(-1)[::7] *= 10
    x.view(-1)[1::11] *= 1e-6
    finite = torch.finfo(dtype).max / 2  # float16 cannot hold e5m2's range times 10
    return x.clamp(-finite, finite).to(dtype)


def reference_quantize(x, scale, fp8_dtype):
    # Independent of the kernels: float64 math, clamp, round to nearest even.
    limit = torch.finfo(fp8_dtype).max
    return (x.double() / scale.double()).clamp(-limit, limit).to(fp8_dtype)


@pytest.mark.parametrize("backend", backend_params())
@pytest.mark.parametrize("fp8_dtype", FP8_DTYPES, ids=str)
@pytest.mark.parametrize("dtype", FLOAT_DTYPES, ids=str)
@pytest.mark.parametrize("shape", SHAPES, ids=str)
def test_quantize_matches_eager_bit_for_bit(backend, dtype, fp8_dtype, shape):
    x = make_input(shape, dtype, fp8_dtype)
    scale = torch.tensor(0.37, device=x.device)
    with comfyx_kernels.use_backend(backend):
        q = comfyx_kernels.quantize_per_tensor_fp8(x, scale, fp8_dtype)
    assert comfyx_kernels.last_backend() == backend
    assert_bit_equal(q, eager.quantize_per_tensor_fp8(x, scale, fp8_dtype))


@pytest.mark.parametrize("fp8_dtype", FP8_DTYPES, ids=str)
def test_eager_quantize_matches_float64_reference(fp8_dtype):
    # A float32 quotient rounds once more than float64's; with a power-of-two scale both are
    # exact, so the results must agree everywhere.
    x = make_input((64, 129), torch.float32, fp8_dtype)
    scale = torch.tensor(0.25, device=x.device)
    q = eager.quantize_per_tensor_fp8(x, scale, fp8_dtype)
    assert_bit_equal(q, reference_quantize(x, scale, fp8_dtype))


@pytest.mark.parametrize("backend", backend_params())
def test_quantize_non_contiguous_input(backend):
    x = make_input((64, 48), torch.bfloat16, torch.float8_e4m3fn).t()[::2]
    scale = torch.tensor(0.5, device=x.device)
    with comfyx_kernels.use_backend(backend):
        q = comfyx_kernels.quantize_per_tensor_fp8(x, scale)
    assert_bit_equal(q, reference_quantize(x, scale, torch.float8_e4m3fn))


@pytest.mark.parametrize("backend", backend_params())
def test_quantize_saturates_and_keeps_nan(backend):
    x = torch.tensor([1e9, -1e9, float("inf"), float("nan"), 0.0, -0.0], device=device())
    scale = torch.tensor(1.0, device=x.device)
    with comfyx_kernels.use_backend(backend):
        q = comfyx_kernels.quantize_per_tensor_fp8(x, scale).float().cpu()
    assert q[:3].tolist() == [448.0, -448.0, 448.0]
    assert torch.isnan(q[3])
    assert q[4:].tolist() == [0.0, 0.0]


@pytest.mark.parametrize("backend", backend_params())
@pytest.mark.parametrize("out_dtype", FLOAT_DTYPES, ids=str)
@pytest.mark.parametrize("fp8_dtype", FP8_DTYPES, ids=str)
def test_dequantize_matches_eager(backend, fp8_dtype, out_dtype):
    limit = torch.finfo(fp8_dtype).max
    q = make_input((37, 19), torch.float32, fp8_dtype).clamp(-limit, limit).to(fp8_dtype)
    scale = torch.tensor(0.0123, device=q.device)
    with comfyx_kernels.use_backend(backend):
        x = comfyx_kernels.dequantize_per_tensor_fp8(q, scale, out_dtype)
    assert_bit_equal(x, eager.dequantize_per_tensor_fp8(q, scale, out_dtype))
    expected = q.double() * scale.double()
    # Relative to the output dtype's precision; results below its smallest normal value are
    # subnormal there, so they only get an absolute bound.
    tiny = torch.finfo(out_dtype).smallest_normal
    assert torch.allclose(x.double(), expected, rtol=2**-7, atol=tiny)


@pytest.mark.parametrize("backend", backend_params())
@pytest.mark.parametrize("fp8_dtype", FP8_DTYPES, ids=str)
@pytest.mark.parametrize("dtype", FLOAT_DTYPES, ids=str)
@pytest.mark.parametrize("shape", [(7,), (300, 301), (2, 1, 4099)], ids=str)
def test_dynamic_quantize(backend, dtype, fp8_dtype, shape):
    x = make_input(shape, dtype, fp8_dtype)
    with comfyx_kernels.use_backend(backend):
        q, scale = comfyx_kernels.quantize_fp8_dynamic(x, fp8_dtype)
    assert comfyx_kernels.last_backend() == backend
    amax = x.abs().max().double()
    assert scale.dtype == torch.float32
    assert scale.item() == pytest.approx(amax.item() / torch.finfo(fp8_dtype).max, rel=1e-6)
    assert_bit_equal(q, eager.quantize_per_tensor_fp8(x, scale, fp8_dtype))
    # The largest magnitude lands exactly on the format's maximum.
    assert q.float().abs().max().item() == torch.finfo(fp8_dtype).max


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16], ids=str)
def test_dynamic_quantize_larger_than_on_chip_staging(dtype):
    # 8.4M float32 elements exceed what the CUDA kernel stages in shared memory (it then keeps
    # part in registers and re-reads the rest); bfloat16 of this size is staged.
    x = make_input((4097, 2049), dtype, torch.float8_e4m3fn)
    with comfyx_kernels.use_backend("cuda"):
        q, scale = comfyx_kernels.quantize_fp8_dynamic(x)
    expected_q, expected_scale = eager.quantize_fp8_dynamic(x, torch.float8_e4m3fn)
    assert_bit_equal(scale, expected_scale)
    assert_bit_equal(q, expected_q)


@pytest.mark.parametrize("backend", backend_params())
def test_dynamic_quantize_of_zeros_is_zeros(backend):
    x = torch.zeros(5, 3, device=device(), dtype=torch.bfloat16)
    with comfyx_kernels.use_backend(backend):
        q, scale = comfyx_kernels.quantize_fp8_dynamic(x)
    assert scale.item() > 0
    assert not q.float().any()
