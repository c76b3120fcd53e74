"""NVFP4 and MXFP8 formats: bit for bit comfy-kitchen 0.2.40's eager backend on the CPU, every
backend bit for bit the eager one, clear errors for shapes the formats cannot hold."""

import logging

import pytest
import torch

import comfyx_kernels as cx
from comfyx_kernels import NoCapableBackendError, UnknownBackendError
from comfyx_kernels.blockscaled import (
    from_swizzled,
    mxfp8_scale_codes,
    nvfp4_tensor_scale,
    to_swizzled,
)
from comfyx_kernels.registry import backends_for

from .helpers import FLOAT_DTYPES, assert_bit_equal, compiled_backend_params, device, triton_param


@pytest.fixture
def kitchen():
    """comfy-kitchen 0.2.40's eager quantization (the reference of the bit-compat tests)."""
    return pytest.importorskip(
        "comfy_kitchen.backends.eager.quantization", reason="pip install comfy-kitchen"
    )


# (rows, cols, pad): aligned, odd rows, more than one 128-row scale tile, unaligned (padded).
SHAPES = [(64, 128, False), (37, 64, False), (130, 96, False), (40, 50, True)]


def awkward_matrix(rows: int, cols: int, dtype: torch.dtype, seed: int = 0) -> torch.Tensor:
    """Random values with an all-zero block, a block far below the rest (its scale rounds
    toward zero), a row of large values (finite in float16) and exact e2m1 rounding ties."""
    generator = torch.Generator().manual_seed(seed)
    x = torch.randn(rows, cols, generator=generator) * 3
    x[0, :32] = 0
    x[1, :16] *= 1e-6
    x[2] *= 1e3
    x[3, :8] = torch.tensor([0.25, 0.75, 1.25, 1.75, 2.5, 3.5, 5.0, 6.0])
    return x.to(dtype)


def _nvfp4_scale(x: torch.Tensor, smaller: bool = False) -> torch.Tensor:
    """The tensor's own per-tensor scale, or one 16x too small: block scales then pass 448
    and saturate (what a stale static scale does)."""
    return nvfp4_tensor_scale(x) / (16 if smaller else 1)


@pytest.mark.parametrize("small_scale", [False, True], ids=["own-scale", "saturating-scale"])
@pytest.mark.parametrize("hi_first", [True, False])
@pytest.mark.parametrize(("rows", "cols", "pad"), SHAPES)
@pytest.mark.parametrize("dtype", FLOAT_DTYPES, ids=str)
def test_nvfp4_equals_kitchen(kitchen, dtype, rows, cols, pad, hi_first, small_scale):
    x = awkward_matrix(rows, cols, dtype)
    scale = _nvfp4_scale(x, small_scale)
    with cx.use_backend("eager"):
        q, s = cx.quantize_nvfp4(x, scale, pad_16x=pad, hi_first=hi_first)
    kq, ks = kitchen.quantize_nvfp4(x, scale, pad_16x=pad, hi_first=hi_first)
    assert_bit_equal(q, kq)
    assert_bit_equal(s, ks)
    for output_type in FLOAT_DTYPES:
        ours = cx.dequantize_nvfp4(q, scale, s, output_type, hi_first, backend="eager")
        assert_bit_equal(ours, kitchen.dequantize_nvfp4(kq, scale, ks, output_type, hi_first))


@pytest.mark.parametrize(
    ("rows", "cols", "pad"), [(64, 128, False), (37, 64, False), (40, 50, True)]
)
@pytest.mark.parametrize("dtype", FLOAT_DTYPES, ids=str)
def test_mxfp8_equals_kitchen(kitchen, dtype, rows, cols, pad):
    x = awkward_matrix(rows, cols, dtype)
    q, s = cx.quantize_mxfp8(x, pad_32x=pad, backend="eager")
    kq, ks = kitchen.quantize_mxfp8(x, pad_32x=pad)
    assert_bit_equal(q, kq)
    assert_bit_equal(s, ks)
    for output_type in FLOAT_DTYPES:
        ours = cx.dequantize_mxfp8(q, s, output_type, backend="eager")
        assert_bit_equal(ours, kitchen.dequantize_mxfp8(kq, ks, output_type))


def test_scale_shapes_are_cublas_tiles():
    x = torch.randn(64, 128)
    assert cx.quantize_nvfp4(x, _nvfp4_scale(x))[1].shape == (128, 8)
    assert cx.quantize_mxfp8(x)[1].shape == (128, 4)


@pytest.mark.parametrize(("rows", "cols"), [(64, 8), (129, 5), (300, 12)])
def test_swizzle_equals_kitchen_blocked_layout(rows, cols):
    kitchen_float = pytest.importorskip(
        "comfy_kitchen.float_utils", reason="pip install comfy-kitchen"
    )
    scales = torch.arange(rows * cols, dtype=torch.int32).reshape(rows, cols)
    swizzled = to_swizzled(scales)
    assert_bit_equal(swizzled, kitchen_float.to_blocked(scales, flatten=False))
    assert_bit_equal(from_swizzled(swizzled, rows, cols), scales)


def kitchen_e8m0(needed: torch.Tensor) -> torch.Tensor:
    """comfy-kitchen's e8m0 rule as it computes it (float32 log2 on the CPU)."""
    exponent = torch.ceil(torch.log2(needed)).to(torch.int32) + 127
    return exponent.clamp(0, 254).to(torch.uint8)


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16], ids=str)
def test_e8m0_rule_equals_kitchen_for_every_16_bit_amax(dtype):
    amax = torch.arange(1 << 15, dtype=torch.int32).to(torch.int16).view(dtype).float()
    amax = amax[amax.isfinite()]
    needed = (amax / torch.tensor(448.0)).clamp(min=2.0**-127)
    assert_bit_equal(mxfp8_scale_codes(needed), kitchen_e8m0(needed))


def test_e8m0_rule_equals_kitchen_next_to_powers_of_two():
    # float32 inputs: amax / 448 a few ulps above 2^e, where a float32 log2 rounds to e.
    powers = torch.ldexp(torch.ones(250), torch.arange(-126, 124, dtype=torch.int32))
    values = [powers]
    for _ in range(48):
        values.append(values[-1].nextafter(torch.tensor(float("inf"))))
    needed = torch.cat(values).clamp(min=2.0**-127)
    ours, theirs = mxfp8_scale_codes(needed), kitchen_e8m0(needed)
    assert_bit_equal(ours, theirs)
    # ...which really is a different rule from the exact ceil for some of them:
    exact = torch.ceil(torch.log2(needed.double())).to(torch.int32).add(127).clamp(0, 254)
    assert (exact.to(torch.uint8) != ours).any()


@pytest.mark.parametrize("small_scale", [False, True], ids=["own-scale", "saturating-scale"])
@pytest.mark.parametrize("hi_first", [True, False])
@pytest.mark.parametrize(("rows", "cols", "pad"), SHAPES)
@pytest.mark.parametrize("dtype", FLOAT_DTYPES, ids=str)
@pytest.mark.parametrize("backend", compiled_backend_params("quantize_nvfp4"))
def test_nvfp4_backend_equals_eager(backend, dtype, rows, cols, pad, hi_first, small_scale):
    x = awkward_matrix(rows, cols, dtype).to(device())
    scale = _nvfp4_scale(x, small_scale)
    q, s = cx.quantize_nvfp4(x, scale, pad_16x=pad, hi_first=hi_first, backend=backend)
    eq, es = cx.quantize_nvfp4(x, scale, pad_16x=pad, hi_first=hi_first, backend="eager")
    assert_bit_equal(q, eq)
    assert_bit_equal(s, es)
    if backend in backends_for("dequantize_nvfp4"):
        for t in FLOAT_DTYPES:
            ours = cx.dequantize_nvfp4(q, scale, s, t, hi_first, backend=backend)
            assert_bit_equal(ours, cx.dequantize_nvfp4(eq, scale, es, t, hi_first, backend="eager"))


@pytest.mark.parametrize(
    "magnitude",
    [1.0, 1e34, 1e-29, 1e-34, 1e-40],
    ids=["ordinary", "huge", "some-tiny", "tiny", "subnormal"],
)
@pytest.mark.parametrize("backend", compiled_backend_params("quantize_nvfp4"))
def test_nvfp4_quantize_equals_eager_at_extreme_scales_and_negative_zero(backend, magnitude):
    """Blocks whose total scale lies outside the reciprocal's exact range (beyond 2^120, below
    2^-100), and -0 elements in a block with a nonzero scale (x / t keeps the sign: code 8)."""
    x = awkward_matrix(64, 128, torch.float32) * magnitude
    x[4, :8] = -0.0
    x = x.to(device())
    scale = nvfp4_tensor_scale(x)
    q, s = cx.quantize_nvfp4(x, scale, backend=backend)
    eq, es = cx.quantize_nvfp4(x, scale, backend="eager")
    assert_bit_equal(q, eq)
    assert_bit_equal(s, es)
    assert (eq[4, :4] == 0x88).all()


@pytest.mark.parametrize(
    ("rows", "cols", "pad"), [(64, 128, False), (130, 96, False), (40, 50, True)]
)
@pytest.mark.parametrize("dtype", FLOAT_DTYPES, ids=str)
@pytest.mark.parametrize("backend", triton_param())
def test_mxfp8_backend_equals_eager(backend, dtype, rows, cols, pad):
    x = awkward_matrix(rows, cols, dtype).to(device())
    q, s = cx.quantize_mxfp8(x, pad_32x=pad, backend=backend)
    eq, es = cx.quantize_mxfp8(x, pad_32x=pad, backend="eager")
    assert_bit_equal(q, eq)
    assert_bit_equal(s, es)
    for output_type in FLOAT_DTYPES:
        ours = cx.dequantize_mxfp8(q, s, output_type, backend=backend)
        assert_bit_equal(ours, cx.dequantize_mxfp8(eq, es, output_type, backend="eager"))


def test_unaligned_columns_need_padding_and_say_so():
    x = torch.randn(8, 50)
    with pytest.raises(NoCapableBackendError, match="pad_16x=True"):
        cx.quantize_nvfp4(x, torch.tensor(0.01))
    with pytest.raises(NoCapableBackendError, match="pad_32x=True"):
        cx.quantize_mxfp8(torch.randn(8, 48))
    q, s = cx.quantize_nvfp4(x, torch.tensor(0.01), pad_16x=True)
    assert q.shape == (16, 32) and s.shape == (128, 4)


def test_bad_operands_are_named():
    x = torch.randn(64, 64)
    q, s = cx.quantize_nvfp4(x, torch.tensor(0.01))
    with pytest.raises(NoCapableBackendError, match="block_scales holds 64 scales"):
        cx.dequantize_nvfp4(q, torch.tensor(0.01), s[:16])
    with pytest.raises(NoCapableBackendError, match="qx must be 2-D"):
        cx.dequantize_nvfp4(q.reshape(-1), torch.tensor(0.01), s)
    with pytest.raises(NoCapableBackendError, match="per_tensor_scale must hold one element"):
        cx.quantize_nvfp4(x, torch.tensor([0.01, 0.02]))
    a, sa = cx.quantize_mxfp8(torch.randn(32, 64))
    b, sb = cx.quantize_mxfp8(torch.randn(32, 96))
    with pytest.raises(NoCapableBackendError, match="differ in K"):
        cx.scaled_mm_mxfp8(a, b, sa, sb)
    with pytest.raises(NoCapableBackendError, match=r"bias has shape \(5,\)"):
        cx.scaled_mm_mxfp8(a, a, sa, sa, torch.zeros(5))


def test_backend_keyword_runs_that_backend_and_logs_the_decision(caplog):
    x = torch.randn(16, 32)
    with caplog.at_level(logging.DEBUG, logger="comfyx_kernels.dispatch"):
        cx.quantize_mxfp8(x, backend="eager")
        assert cx.last_backend() == "eager"
        cx.quantize_mxfp8(x)
        chosen = cx.last_backend()
    decisions = [r.getMessage() for r in caplog.records if r.name == "comfyx_kernels.dispatch"]
    assert decisions[0] == "quantize_mxfp8 -> eager (requested)"
    # The automatic choice names the backend and why each one before it was skipped.
    expected = f"quantize_mxfp8 -> {chosen}"
    assert decisions[1] == expected or decisions[1].startswith(f"{expected}; ")
    for skipped in cx.registry.PRIORITY[: cx.registry.PRIORITY.index(chosen)]:
        assert f"{skipped} skipped: " in decisions[1]
    with pytest.raises(UnknownBackendError):
        cx.quantize_mxfp8(x, backend="cutlass")
    with pytest.raises(NoCapableBackendError) as error:
        cx.quantize_per_tensor_fp8(x, torch.tensor(0.1), backend="cuda")  # x is on the CPU
    assert list(error.value.reasons) == ["cuda"]
