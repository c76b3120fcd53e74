"""The CUDA quantize kernels' divide-free quotient (csrc/fp8_quotient.cuh) equals the divide.

First the argument itself, on the CPU's IEEE float32 arithmetic: for every 16-bit input and
many scales, x·below and x·above bracket RN(x / scale), and equal fp8 codes at both ends mean
the same code for the quotient. Then every backend against eager, bit for bit, on inputs built
to sit within a few ulps of fp8 rounding midpoints (where the CUDA kernels must fall back to
the divide), on every 16-bit input, and on scales outside the bracketed range.

(The Triton kernels keep div_rn: the same bracket, selecting fp8 codes through a branch, was
miscompiled on an H100 (half of the codes zeroed) though right in the interpreter, and slower.)
"""

import pytest
import torch

import comfyx_kernels
from comfyx_kernels.backends import eager
from comfyx_kernels.fp8 import FP8_MAX, dynamic_scale

from .helpers import FP8_DTYPES, backend_params, bits, device, near_midpoints

# The bracket of csrc/fp8_quotient.cuh: RN(1/scale) moved by this relative amount either way,
# for scales in this range (the kernels divide for any other).
QUOTIENT_BRACKET = 2.0**-22
BRACKETED_SCALES = (2.0**-100, 2.0**100)
# Powers of two (exact reciprocal), short mantissas (exact quotients land on midpoints),
# long ones, the ends of the bracketed range and their float32 neighbours.
BRACKETED = [
    1.0,
    0.25,
    2.0**-7,
    1.5,
    0.75 * 2**-6,
    13 * 2**-10,
    0.37,
    1 / 3,
    5.4375 / 448,
    1234.5678,
    BRACKETED_SCALES[0],
    BRACKETED_SCALES[1],
    float(torch.tensor(BRACKETED_SCALES[0]).nextafter(torch.tensor(1.0))),
    float(torch.tensor(BRACKETED_SCALES[1]).nextafter(torch.tensor(0.0))),
]
# Scales the kernels divide by everywhere: outside the range, subnormal, zero, negative, NaN.
UNBRACKETED = [2.0**-110, 2.0**110, 1e-40, 0.0, -1.5, float("inf"), float("nan")]


def every_16_bit_value(dtype: torch.dtype) -> torch.Tensor:
    return torch.arange(-(2**15), 2**15, dtype=torch.int32).to(torch.int16).view(dtype)


def fp8_codes(v: torch.Tensor, fp8_dtype: torch.dtype) -> torch.Tensor:
    limit = FP8_MAX[fp8_dtype]
    return v.clamp(-limit, limit).to(fp8_dtype).view(torch.uint8)


def assert_same_fp8(actual: torch.Tensor, expected: torch.Tensor) -> None:
    """Bit for bit, except that any NaN code matches any NaN code (NaN's sign is not kept the
    same way by every processor)."""
    actual, expected = actual.cpu(), expected.cpu()
    assert actual.shape == expected.shape and actual.dtype == expected.dtype
    nan = expected.float().isnan()
    assert torch.equal(actual.float().isnan(), nan), "NaN positions differ"
    differ = bits(actual)[~nan] != bits(expected)[~nan]
    assert not differ.any(), f"{int(differ.sum())} of {differ.numel()} elements differ"


def assert_quantize_equals_eager(
    backend: str, x: torch.Tensor, scale: float, fp8_dtype: torch.dtype
) -> None:
    s = torch.tensor(scale, device=x.device)
    with comfyx_kernels.use_backend(backend):
        q = comfyx_kernels.quantize_per_tensor_fp8(x, s, fp8_dtype)
    assert_same_fp8(q, eager.quantize_per_tensor_fp8(x, s, fp8_dtype))


@pytest.mark.parametrize("fp8_dtype", FP8_DTYPES, ids=str)
def test_bracket_holds_the_ieee_quotient_for_every_16_bit_input(fp8_dtype):
    x = torch.cat(
        [
            every_16_bit_value(torch.bfloat16).float(),
            every_16_bit_value(torch.float16).float(),
            near_midpoints(fp8_dtype, 0.37),
        ]
    )
    x = x[~x.isnan()]
    generator = torch.Generator().manual_seed(0)
    exponents = torch.empty(64).uniform_(-100, 100, generator=generator)
    scales = BRACKETED + (2.0**exponents).tolist()
    ambiguous = 0
    for scale in scales:
        s = torch.tensor(scale, dtype=torch.float32)
        inverse = 1 / s
        if s.view(torch.int32) & 0x7FFFFF == 0:
            below = above = inverse
        else:
            below, above = inverse * (1 - QUOTIENT_BRACKET), inverse * (1 + QUOTIENT_BRACKET)
        assert below.double() <= 1 / s.double() <= above.double(), scale
        low, high, quotient = x * below, x * above, x / s
        assert (torch.minimum(low, high) <= quotient).all(), scale
        assert (quotient <= torch.maximum(low, high)).all(), scale
        low_codes, high_codes = fp8_codes(low, fp8_dtype), fp8_codes(high, fp8_dtype)
        same = low_codes == high_codes
        assert torch.equal(fp8_codes(quotient, fp8_dtype)[same], low_codes[same]), scale
        ambiguous += int((~same).sum())
    assert ambiguous > 1000  # the inputs do reach the divide fallback


@pytest.mark.parametrize("backend", backend_params())
@pytest.mark.parametrize("fp8_dtype", FP8_DTYPES, ids=str)
@pytest.mark.parametrize("scale", BRACKETED + UNBRACKETED, ids=repr)
def test_quantize_near_midpoints_equals_eager(backend, fp8_dtype, scale):
    x = near_midpoints(fp8_dtype, scale if 0 < abs(scale) < float("inf") else 1.0)
    x = torch.cat([x, torch.tensor([0.0, -0.0, float("inf"), float("-inf"), float("nan")])])
    assert_quantize_equals_eager(backend, x.to(device()), scale, fp8_dtype)


@pytest.mark.parametrize("backend", backend_params())
@pytest.mark.parametrize("fp8_dtype", FP8_DTYPES, ids=str)
@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16], ids=str)
def test_quantize_every_16_bit_input_equals_eager(backend, dtype, fp8_dtype):
    x = every_16_bit_value(dtype).to(device())
    for scale in [1.0, 1.5, 0.37, 13 * 2**-10, 2.0**-100, 2.0**-110, 3e38]:
        assert_quantize_equals_eager(backend, x, scale, fp8_dtype)


@pytest.mark.parametrize("backend", backend_params())
@pytest.mark.parametrize("fp8_dtype", FP8_DTYPES, ids=str)
@pytest.mark.parametrize("amax", [5.25, 5.4375, 1.0, 3e-20, 7e25, 1e-35], ids=repr)
def test_dynamic_quantize_near_midpoints_equals_eager(backend, fp8_dtype, amax):
    # Built around the scale eager derives from amax; every other |x| stays below amax.
    amax_t = torch.tensor(amax, dtype=torch.float32)
    scale = float(dynamic_scale(amax_t, fp8_dtype))
    x = near_midpoints(fp8_dtype, scale, largest=FP8_MAX[fp8_dtype] * 0.99)
    x = torch.cat([x, amax_t.reshape(1)]).to(device())
    with comfyx_kernels.use_backend(backend):
        q, s = comfyx_kernels.quantize_fp8_dynamic(x, fp8_dtype)
    expected_q, expected_s = eager.quantize_fp8_dynamic(x, fp8_dtype)
    assert s.item() == expected_s.item() == scale
    assert_same_fp8(q, expected_q)
