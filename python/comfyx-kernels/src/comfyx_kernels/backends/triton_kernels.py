"""Triton kernels: fp8 quantize / dequantize / dynamic quantize and interleaved RoPE.

Math matches the eager backend: fp32 IEEE divide (div_rn, not Triton's approximate `/`),
saturate, round to nearest even.
"""

from __future__ import annotations

import inspect
import os

import triton
import triton.language as tl

INTERPRETING = os.environ.get("TRITON_INTERPRET") == "1"

# Tuning results kept on disk in Triton's cache directory (which comfyx points at its persistent
# compile cache), so a restarted server does not time every config of every shape again: with
# full-depth Flux on NVFP4 weights, a warm restart's first step spent 2.4 s running the model,
# two forwards of ~0.14 s and the first calls of these kernels, each autotuning anew (H100).
# Triton offers it from 3.4 on.
CACHE_RESULTS = "cache_results" in inspect.signature(triton.autotune).parameters


def autotune(configs: list[triton.Config], key: list[str], **options):
    """triton.autotune, its results cached on disk where Triton can."""
    if CACHE_RESULTS:
        options["cache_results"] = True
    return triton.autotune(configs=configs, key=key, **options)


def _tuning(configs: list[triton.Config]) -> list[triton.Config]:
    # The interpreter cannot time configs (it has no GPU driver); one config skips tuning.
    return configs[:1] if INTERPRETING else configs


_FLAT_CONFIGS = _tuning(
    [
        triton.Config({"BLOCK": block}, num_warps=warps)
        for block, warps in ((1024, 4), (2048, 4), (4096, 8), (8192, 8))
    ]
)


@autotune(configs=_FLAT_CONFIGS, key=["size_class"])
@triton.jit
def quantize_kernel(
    x_ptr, scale_ptr, out_ptr, n, size_class, FP8_MAX: tl.constexpr, BLOCK: tl.constexpr
):
    offsets = tl.program_id(0).to(tl.int64) * BLOCK + tl.arange(0, BLOCK)
    mask = offsets < n
    x = tl.load(x_ptr + offsets, mask=mask).to(tl.float32)
    scaled = tl.math.div_rn(x, tl.load(scale_ptr))
    scaled = tl.clamp(scaled, -FP8_MAX, FP8_MAX, propagate_nan=tl.PropagateNan.ALL)
    tl.store(out_ptr + offsets, scaled.to(out_ptr.dtype.element_ty), mask=mask)


@autotune(configs=_FLAT_CONFIGS, key=["size_class"])
@triton.jit
def dequantize_kernel(x_ptr, scale_ptr, out_ptr, n, size_class, BLOCK: tl.constexpr):
    offsets = tl.program_id(0).to(tl.int64) * BLOCK + tl.arange(0, BLOCK)
    mask = offsets < n
    x = tl.load(x_ptr + offsets, mask=mask).to(tl.float32)
    # The scale is rounded to the output dtype first, as eager's x.to(out) * scale.to(out);
    # the fp32 product of two such values is exact, so one rounding gives the same result.
    scale = tl.load(scale_ptr).to(out_ptr.dtype.element_ty).to(tl.float32)
    tl.store(out_ptr + offsets, (x * scale).to(out_ptr.dtype.element_ty), mask=mask)


@autotune(configs=_FLAT_CONFIGS, key=["size_class"])
@triton.jit
def amax_kernel(x_ptr, amax_ptr, n, size_class, BLOCK: tl.constexpr):
    offsets = tl.program_id(0).to(tl.int64) * BLOCK + tl.arange(0, BLOCK)
    x = tl.load(x_ptr + offsets, mask=offsets < n, other=0.0).to(tl.float32)
    tl.atomic_max(amax_ptr, tl.max(tl.abs(x), axis=0))


@autotune(configs=_FLAT_CONFIGS, key=["size_class"])
@triton.jit
def quantize_from_amax_kernel(
    x_ptr,
    amax_ptr,
    scale_ptr,
    out_ptr,
    n,
    size_class,
    FP8_MAX: tl.constexpr,
    MIN_SCALE: tl.constexpr,
    BLOCK: tl.constexpr,
):
    # Every program derives the scale from amax itself: no extra launch, no host round trip.
    scale = tl.maximum(tl.math.div_rn(tl.load(amax_ptr), FP8_MAX), MIN_SCALE)
    if tl.program_id(0) == 0:
        tl.store(scale_ptr, scale)
    offsets = tl.program_id(0).to(tl.int64) * BLOCK + tl.arange(0, BLOCK)
    mask = offsets < n
    x = tl.load(x_ptr + offsets, mask=mask).to(tl.float32)
    scaled = tl.clamp(
        tl.math.div_rn(x, scale), -FP8_MAX, FP8_MAX, propagate_nan=tl.PropagateNan.ALL
    )
    tl.store(out_ptr + offsets, scaled.to(out_ptr.dtype.element_ty), mask=mask)


@autotune(
    configs=_tuning(
        [
            triton.Config({"BLOCK_ROWS": rows}, num_warps=warps)
            for rows, warps in ((4, 4), (8, 4), (16, 4), (32, 8))
        ]
    ),
    key=["half_dim_pow2", "size_class"],
)
@triton.jit
def rope_kernel(
    x_ptr,
    out_ptr,
    freqs_ptr,
    rows,
    dim1,
    dim2,
    half_dim,
    size_class,
    sx0,
    sx1,
    sx2,
    sxd,
    so0,
    so1,
    so2,
    sod,
    sf0,
    sf1,
    sf2,
    sfp,
    sfi,
    sfj,
    half_dim_pow2: tl.constexpr,
    BLOCK_ROWS: tl.constexpr,
):
    # One tile = BLOCK_ROWS rows of (b, i1, i2) by all D/2 pairs; any strides, stride 0 in
    # freqs for broadcast dimensions.
    row = tl.program_id(0).to(tl.int64) * BLOCK_ROWS + tl.arange(0, BLOCK_ROWS)
    pair = tl.arange(0, half_dim_pow2)
    i2 = row % dim2
    i1 = (row // dim2) % dim1
    i0 = row // (dim2 * dim1)
    mask = (row < rows)[:, None] & (pair < half_dim)[None, :]
    x_row = (i0 * sx0 + i1 * sx1 + i2 * sx2)[:, None]
    o_row = (i0 * so0 + i1 * so1 + i2 * so2)[:, None]
    f_at = freqs_ptr + (i0 * sf0 + i1 * sf1 + i2 * sf2)[:, None] + (pair * sfp)[None, :]
    even = x_row + (2 * pair * sxd)[None, :]
    # float32 math for any freqs dtype (exact for float32 freqs, closer for 16-bit ones).
    x0 = tl.load(x_ptr + even, mask=mask).to(tl.float32)
    x1 = tl.load(x_ptr + even + sxd, mask=mask).to(tl.float32)
    f00 = tl.load(f_at, mask=mask).to(tl.float32)
    f01 = tl.load(f_at + sfj, mask=mask).to(tl.float32)
    f10 = tl.load(f_at + sfi, mask=mask).to(tl.float32)
    f11 = tl.load(f_at + sfi + sfj, mask=mask).to(tl.float32)
    out_even = o_row + (2 * pair * sod)[None, :]
    out_type = out_ptr.dtype.element_ty
    tl.store(out_ptr + out_even, (f00 * x0 + f01 * x1).to(out_type), mask=mask)
    tl.store(out_ptr + out_even + sod, (f10 * x0 + f11 * x1).to(out_type), mask=mask)
