"""Triton kernels for NVFP4 and MXFP8 quantize / dequantize and MXFP8's row-wise fp8 rewrite,
bit for bit equal to the eager backend (backends/eager_blockscaled.py) on finite inputs.

They run on sm_89 and newer (hardware fp8 conversion; no sm_100 instruction such as
`cvt.e2m1x2`, which is why comfy-kitchen's Triton NVFP4 kernels fail on Hopper and Ada).
One program quantizes a BM x BK tile: block amax, block scale, the elements' codes, packed
bytes and the swizzled scales of its blocks, one read of the input.
"""

from __future__ import annotations

import triton
import triton.language as tl

from ..blockscaled import MXFP8_ROWWISE_MAX_SHIFT, W4A8_WEIGHT_DIVISOR
from .triton_kernels import _tuning, autotune

# Quantize / dequantize tiles: (rows, columns, warps). BK is a multiple of 64, so a program's
# blocks fill whole 4-column groups of the swizzled scale layout.
_TILE_CONFIGS = _tuning(
    [
        triton.Config({"BM": bm, "BK": bk}, num_warps=w)
        for bm, bk, w in ((32, 128, 4), (16, 256, 4), (64, 128, 8))
    ]
)
# Globals a @triton.jit function reads must be constexpr (compiled Triton refuses others).
LOG2_E = tl.constexpr(1.4426950408889634)
# NVFP4 divides by the block's total scale through its reciprocal and one correction
# (Markstein: with r = RN(1/t), q0 = RN(x r), rem = fma(-q0, t, x) exact, RN(q0 + rem r) is
# RN(x / t)); valid while r and the remainders are normal floats, i.e. t in this range. A block
# outside it divides x · SHIFT^±1 by t · SHIFT^±1 instead: powers of two, so both products are
# exact and the quotient is the same (an x made subnormal by the shift only ever has a quotient
# that rounds to 0 in e2m1 either way).
SAFE_SCALE_MIN = tl.constexpr(2.0**-100)
SAFE_SCALE_MAX = tl.constexpr(2.0**120)
SHIFT_UP = tl.constexpr(2.0**64)
SHIFT_DOWN = tl.constexpr(2.0**-64)
# e2m1_values_tiny's factor; multiplying by the inverse (a power of two) is exact.
E2M1_TINY_INVERSE = tl.constexpr(2.0**14)
W4A8_DIVISOR = tl.constexpr(W4A8_WEIGHT_DIVISOR)
W4A8_INVERSE = tl.constexpr(1.0 / W4A8_WEIGHT_DIVISOR)  # a power of two: the multiply is exact
ROWWISE_MAX_SHIFT = tl.constexpr(MXFP8_ROWWISE_MAX_SHIFT)


@triton.jit
def swizzled_offset(row, col, padded_cols):
    """Offset of scale (row, col) in cuBLAS's swizzled layout (blockscaled.swizzled_offsets)."""
    tile = (row // 128) * (padded_cols // 4) + col // 4
    return tile * 512 + (row % 32) * 16 + ((row % 128) // 32) * 4 + col % 4


@triton.jit
def e2m1_codes(magnitude, sign):
    """float32 magnitude (≥ 0) → 4-bit e2m1 code: saturated at 6, rounded to nearest even, the sign
    bit from the float32 `sign` (equal to blockscaled.e2m1_codes on clamped finite q for |q| and
    q; NaN gives the largest magnitude). The saturation is an integer min on the bits; below 1 the
    add of 2^22 rounds to a multiple of 0.5; from 1 on the bits are rounded to one mantissa bit and
    the exponent rebased (e2m1 bias 1)."""
    magnitude = tl.minimum(magnitude.to(tl.int32, bitcast=True), 0x40C00000)
    small = (magnitude.to(tl.float32, bitcast=True) + 4194304.0).to(tl.int32, bitcast=True)
    small = small - 0x4A800000
    normal = (magnitude + ((magnitude >> 22) & 1) + ((-126 << 23) + 0x1FFFFF)) >> 22
    sign_bit = (sign.to(tl.int32, bitcast=True) >> 28) & 8
    return tl.where(magnitude < 0x3F800000, small, normal) | sign_bit


@triton.jit
def e2m1_values_tiny(codes):
    """4-bit codes → float32 e2m1 values times 2^-14 (1 / E2M1_TINY_INVERSE), via float16 bits:
    the code's 3 magnitude bits at bit 9 make e2m1's exponent and mantissa a float16 (subnormal
    below 1)."""
    half = ((codes & 8).to(tl.uint16) << 12) | ((codes & 7).to(tl.uint16) << 9)
    return half.to(tl.float16, bitcast=True).to(tl.float32)


@triton.jit
def e2m1_values(codes):
    """4-bit codes → float32 e2m1 values."""
    return e2m1_values_tiny(codes) * E2M1_TINY_INVERSE


@triton.jit
def unpack_codes(packed, HI_FIRST: tl.constexpr):
    """(R, C) packed bytes → (R, C, 2) codes, the even element first."""
    high, low = packed >> 4, packed & 15
    return tl.join(high, low) if HI_FIRST else tl.join(low, high)


@triton.jit
def w4a8_weight(w):
    """The W4A8 weight element: e2m1 · block scale (float32, exact) / W4A8_WEIGHT_DIVISOR
    rounded to the nearest e4m3, ties to even. One rule for the W4A8 GEMM's main loop and
    nvfp4_to_fp8_kernel, so the cuBLASLt path multiplies the same weight (eager: nvfp4_to_fp8)."""
    return (w * W4A8_INVERSE).to(tl.float8e4nv)


@triton.jit
def e8m0_values(codes):
    """uint8 e8m0 codes → float32 2^(code - 127); code 0 → 0 (comfy-kitchen's reading)."""
    return (codes.to(tl.int32) << 23).to(tl.float32, bitcast=True)


@triton.jit
def _tile(pid_m, pid_k, rows, cols, stride, BM: tl.constexpr, BK: tl.constexpr):
    r = pid_m * BM + tl.arange(0, BM)
    c = pid_k * BK + tl.arange(0, BK)
    mask = (r < rows)[:, None] & (c < cols)[None, :]
    return r, c, mask, r[:, None].to(tl.int64) * stride + c[None, :]


@triton.jit
def load_nvfp4_blocks(x_ptr, pts_ptr, pid_m, pid_k, rows, cols, BM: tl.constexpr, BK: tl.constexpr):
    """A BM x BK tile of x for NVFP4: its rows, its 16-element blocks (float32), their e4m3 block
    scales (comfy-kitchen's rule: amax / 6 / per-tensor scale, saturated at 448) and each block's
    total scale, per-tensor · block (float32, exact)."""
    r, _, mask, offsets = _tile(pid_m, pid_k, rows, cols, cols, BM, BK)
    x = tl.load(x_ptr + offsets, mask=mask, other=0.0).to(tl.float32)
    blocks = tl.reshape(x, (BM, BK // 16, 16))
    amax = tl.max(tl.abs(blocks), axis=2)
    pts = tl.load(pts_ptr)
    scale = tl.math.div_rn(tl.math.div_rn(amax, 6.0), pts)
    scale_fp8 = tl.minimum(scale, 448.0, propagate_nan=tl.PropagateNan.ALL).to(tl.float8e4nv)
    return r, blocks, scale_fp8, pts * scale_fp8.to(tl.float32)


@triton.jit
def store_nvfp4_tile(
    q_ptr, s_ptr, packed, scale_fp8, r, pid_k, rows, cols, scale_cols_padded, BK: tl.constexpr
):
    """Store rows r, columns [pid_k · BK, + BK) of NVFP4: the packed bytes (BM, BK / 2) and the
    e4m3 block scales (BM, BK / 16) in the swizzled layout."""
    half = cols // 2
    rh = pid_k * (BK // 2) + tl.arange(0, BK // 2)
    store_mask = (r < rows)[:, None] & (rh < half)[None, :]
    tl.store(q_ptr + r[:, None].to(tl.int64) * half + rh[None, :], packed.to(tl.uint8), store_mask)
    sc = pid_k * (BK // 16) + tl.arange(0, BK // 16)
    s_mask = (r < rows)[:, None] & (sc < cols // 16)[None, :]
    s_offsets = swizzled_offset(r[:, None], sc[None, :], scale_cols_padded)
    tl.store(s_ptr + s_offsets, scale_fp8, s_mask)


@autotune(configs=_TILE_CONFIGS, key=["size_class"])
@triton.jit
def quantize_nvfp4_kernel(
    x_ptr,
    pts_ptr,
    q_ptr,
    s_ptr,
    rows,
    cols,
    scale_cols_padded,
    size_class,
    HI_FIRST: tl.constexpr,
    BM: tl.constexpr,
    BK: tl.constexpr,
):
    pid_m, pid_k = tl.program_id(0), tl.program_id(1)
    r, blocks, scale_fp8, total = load_nvfp4_blocks(
        x_ptr, pts_ptr, pid_m, pid_k, rows, cols, BM, BK
    )
    # Per block, |x| / t through the reciprocal (SAFE_SCALE_MIN's comment), t shifted into range
    # where it lies outside (t is finite: at most amax / 6 rounded up). The sign comes from x, so
    # -0 keeps it (x / t does; the correction's sum would not). Deciding per tile, with a division
    # as the fallback, cost ~9 points of copy bandwidth (bench/quantize_nvfp4_variants.py).
    zero = total == 0.0
    shift = tl.where(total > SAFE_SCALE_MAX, SHIFT_DOWN, 1.0)
    shift = tl.where(total < SAFE_SCALE_MIN, SHIFT_UP, shift)
    safe = tl.where(zero, 1.0, total * shift)[:, :, None]
    inverse = tl.math.div_rn(1.0, safe)
    magnitude = tl.abs(blocks) * shift[:, :, None]
    q0 = magnitude * inverse
    q = tl.fma(tl.fma(-q0, safe, magnitude), inverse, q0)
    codes = tl.where(zero[:, :, None], 0, e2m1_codes(q, blocks))  # a zero scale gives +0
    # the pair's sum, not tl.split: 1.5 points of copy bandwidth (the same sweep)
    pairs = tl.reshape(codes, (BM, BK // 2, 2))
    first = tl.arange(0, 2)[None, None, :] == (0 if HI_FIRST else 1)
    packed = tl.sum(tl.where(first, pairs << 4, pairs), axis=2)
    store_nvfp4_tile(q_ptr, s_ptr, packed, scale_fp8, r, pid_k, rows, cols, scale_cols_padded, BK)


@triton.jit
def _nvfp4_tile(
    q_ptr,
    s_ptr,
    pid_m,
    pid_k,
    rows,
    cols,
    scale_cols_padded,
    HI_FIRST: tl.constexpr,
    BM: tl.constexpr,
    BK: tl.constexpr,
):
    """A BM x BK tile of packed NVFP4: its e2m1 values (BM, BK / 16, 16) and block scales
    (BM, BK / 16), both float32."""
    half = cols // 2
    r, _, mask, offsets = _tile(pid_m, pid_k, rows, half, half, BM, BK // 2)
    packed = tl.load(q_ptr + offsets, mask=mask, other=0)
    values = tl.reshape(e2m1_values(unpack_codes(packed, HI_FIRST)), (BM, BK // 16, 16))
    sc = pid_k * (BK // 16) + tl.arange(0, BK // 16)
    s_mask = (r < rows)[:, None] & (sc < cols // 16)[None, :]
    s_offsets = swizzled_offset(r[:, None], sc[None, :], scale_cols_padded)
    scales = tl.load(s_ptr + s_offsets, mask=s_mask, other=0.0).to(tl.float32)
    return values, scales


@autotune(configs=_TILE_CONFIGS, key=["size_class"])
@triton.jit
def dequantize_nvfp4_kernel(
    q_ptr,
    pts_ptr,
    s_ptr,
    out_ptr,
    rows,
    cols,
    scale_cols_padded,
    size_class,
    HI_FIRST: tl.constexpr,
    BM: tl.constexpr,
    BK: tl.constexpr,
):
    pid_m, pid_k = tl.program_id(0), tl.program_id(1)
    values, scales = _nvfp4_tile(
        q_ptr, s_ptr, pid_m, pid_k, rows, cols, scale_cols_padded, HI_FIRST, BM, BK
    )
    out_type = out_ptr.dtype.element_ty
    # comfy-kitchen rounds the per-tensor scale, then its product with the block scale, to the
    # output dtype before the multiply (the products themselves are exact in float32).
    pts = tl.load(pts_ptr).to(out_type).to(tl.float32)
    total = (pts * scales).to(out_type).to(tl.float32)
    out = tl.reshape(values * total[:, :, None], (BM, BK)).to(out_type)
    _, _, out_mask, out_offsets = _tile(pid_m, pid_k, rows, cols, cols, BM, BK)
    tl.store(out_ptr + out_offsets, out, out_mask)


@autotune(configs=_TILE_CONFIGS, key=["size_class"])
@triton.jit
def nvfp4_to_fp8_kernel(
    q_ptr,
    s_ptr,
    out_ptr,
    rows,
    cols,
    scale_cols_padded,
    size_class,
    HI_FIRST: tl.constexpr,
    BM: tl.constexpr,
    BK: tl.constexpr,
):
    pid_m, pid_k = tl.program_id(0), tl.program_id(1)
    values, scales = _nvfp4_tile(
        q_ptr, s_ptr, pid_m, pid_k, rows, cols, scale_cols_padded, HI_FIRST, BM, BK
    )
    out = w4a8_weight(tl.reshape(values * scales[:, :, None], (BM, BK)))
    _, _, out_mask, out_offsets = _tile(pid_m, pid_k, rows, cols, cols, BM, BK)
    tl.store(out_ptr + out_offsets, out, out_mask)


@triton.jit
def mxfp8_scale_codes(amax):
    """comfy-kitchen's e8m0 rule, exactly as blockscaled.mxfp8_scale_codes computes it."""
    # max(amax / 448, 2^-127) on the bits (both non-negative): 2^-127 is a float32 subnormal,
    # which Triton 3.6 would type as float64 in a float max.
    bits = tl.maximum(tl.math.div_rn(amax, 448.0).to(tl.int32, bitcast=True), 0x00400000)
    biased = (bits >> 23) & 0xFF
    mantissa = bits & 0x7FFFFF
    subnormal = biased == 0
    e = tl.where(subnormal, -127, biased - 127)
    f = tl.where(subnormal, (mantissa - 4194304).to(tl.float32) * 2.0**-22, mantissa * 2.0**-23)
    near = tl.ceil(e.to(tl.float32) + f * LOG2_E).to(tl.int32)
    exponent = tl.where(f == 0.0, e, tl.where(f >= 2.0**-8, e + 1, near))
    code = tl.minimum(tl.maximum(exponent + 127, 0), 254)
    return tl.where(biased == 255, 0, code)


@autotune(configs=_TILE_CONFIGS, key=["size_class"])
@triton.jit
def quantize_mxfp8_kernel(
    x_ptr,
    q_ptr,
    s_ptr,
    rows,
    cols,
    scale_cols_padded,
    size_class,
    BM: tl.constexpr,
    BK: tl.constexpr,
):
    pid_m, pid_k = tl.program_id(0), tl.program_id(1)
    r, _, mask, offsets = _tile(pid_m, pid_k, rows, cols, cols, BM, BK)
    x = tl.load(x_ptr + offsets, mask=mask, other=0.0).to(tl.float32)
    blocks = tl.reshape(x, (BM, BK // 32, 32))
    amax = tl.max(tl.abs(blocks), axis=2)
    codes = mxfp8_scale_codes(amax)
    zero = amax == 0.0
    # x / 2^k is exact as x * 2^-k; code 0 is a zero scale, and x / 0 is x * inf.
    inverse_bits = tl.where(codes == 254, 0x00400000, (254 - codes) << 23)
    inverse = tl.where(codes == 0, 0x7F800000, inverse_bits).to(tl.float32, bitcast=True)
    inverse = tl.where(zero, 1.0, inverse)  # all-zero blocks stay zero (no 0 * inf)
    q = blocks * inverse[:, :, None]
    q = tl.clamp(q, -448.0, 448.0, propagate_nan=tl.PropagateNan.ALL)
    q = tl.reshape(q, (BM, BK)).to(tl.float8e4nv)
    tl.store(q_ptr + offsets, q, mask)
    sc = pid_k * (BK // 32) + tl.arange(0, BK // 32)
    s_mask = (r < rows)[:, None] & (sc < cols // 32)[None, :]
    s_offsets = swizzled_offset(r[:, None], sc[None, :], scale_cols_padded)
    tl.store(s_ptr + s_offsets, tl.where(zero, 0, codes).to(tl.uint8), s_mask)


@triton.jit
def _mxfp8_tile(q_ptr, s_ptr, rows, cols, scale_cols_padded, BM: tl.constexpr, BK: tl.constexpr):
    """This program's BM x BK tile of MXFP8 data (float32) and its e8m0 codes (BM, BK // 32), with
    the tile's rows, mask and offsets."""
    pid_m, pid_k = tl.program_id(0), tl.program_id(1)
    r, _, mask, offsets = _tile(pid_m, pid_k, rows, cols, cols, BM, BK)
    q = tl.load(q_ptr + offsets, mask=mask, other=0.0).to(tl.float32)
    sc = pid_k * (BK // 32) + tl.arange(0, BK // 32)
    s_mask = (r < rows)[:, None] & (sc < cols // 32)[None, :]
    s_offsets = swizzled_offset(r[:, None], sc[None, :], scale_cols_padded)
    return r, mask, offsets, q, tl.load(s_ptr + s_offsets, mask=s_mask, other=0)


@autotune(configs=_TILE_CONFIGS, key=["size_class"])
@triton.jit
def dequantize_mxfp8_kernel(
    q_ptr,
    s_ptr,
    out_ptr,
    rows,
    cols,
    scale_cols_padded,
    size_class,
    BM: tl.constexpr,
    BK: tl.constexpr,
):
    _, mask, offsets, q, codes = _mxfp8_tile(q_ptr, s_ptr, rows, cols, scale_cols_padded, BM, BK)
    scales = e8m0_values(codes)
    out = tl.reshape(tl.reshape(q, (BM, BK // 32, 32)) * scales[:, :, None], (BM, BK))
    tl.store(out_ptr + offsets, out.to(out_ptr.dtype.element_ty), mask)


@triton.jit
def mxfp8_row_scale_kernel(
    s_ptr,
    row_scale_ptr,
    rows,
    blocks,
    scale_cols_padded,
    BM: tl.constexpr,
    BC: tl.constexpr,
):
    """Each row's largest e8m0 block scale as float32 (e8m0_values: code 0 → 0), BM rows per
    program, BC of a row's scales at a time (1/32 of the data: the pass over q is the cost)."""
    r = tl.program_id(0) * BM + tl.arange(0, BM)
    top = tl.zeros((BM,), dtype=tl.int32)
    for start in range(0, blocks, BC):
        sc = start + tl.arange(0, BC)
        s_mask = (r < rows)[:, None] & (sc < blocks)[None, :]
        s_offsets = swizzled_offset(r[:, None], sc[None, :], scale_cols_padded)
        codes = tl.load(s_ptr + s_offsets, mask=s_mask, other=0).to(tl.int32)
        top = tl.maximum(top, tl.max(codes, axis=1))
    tl.store(row_scale_ptr + r, e8m0_values(top), r < rows)


@autotune(configs=_TILE_CONFIGS, key=["size_class"])
@triton.jit
def mxfp8_to_fp8_rowwise_kernel(
    q_ptr,
    s_ptr,
    row_scale_ptr,
    out_ptr,
    rows,
    cols,
    scale_cols_padded,
    size_class,
    BM: tl.constexpr,
    BK: tl.constexpr,
):
    """e4m3(q · 2^(s - S)) for a BM x BK tile (eager_blockscaled.mxfp8_to_fp8_rowwise): S read
    back from the row scale's exponent field, the power of two built on the bits (an exact
    multiply), one rounding to nearest even in the fp8 conversion."""
    r, mask, offsets, q, codes = _mxfp8_tile(q_ptr, s_ptr, rows, cols, scale_cols_padded, BM, BK)
    codes = codes.to(tl.int32)
    top = tl.load(row_scale_ptr + r, mask=r < rows, other=0.0).to(tl.int32, bitcast=True) >> 23
    shift = tl.minimum(top[:, None] - codes, ROWWISE_MAX_SHIFT)
    factor = ((127 - shift) << 23).to(tl.float32, bitcast=True)
    factor = tl.where(codes == 0, 0.0, factor)  # code 0 is a zero scale
    out = tl.reshape(tl.reshape(q, (BM, BK // 32, 32)) * factor[:, :, None], (BM, BK))
    tl.store(out_ptr + offsets, out.to(tl.float8e4nv), mask)
