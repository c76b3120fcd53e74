"""Block-scaled formats NVFP4 and MXFP8 as comfy-kitchen 0.2.40 stores them (bit for bit).

NVFP4: e2m1 values (±{0, .5, 1, 1.5, 2, 3, 4, 6}) packed two per uint8 (`hi_first`: the
even-indexed element in the high nibble), one float8_e4m3fn scale per 16 elements along the
last dimension, and a float32 per-tensor scale (amax / (448 · 6) when made from a tensor):
x ≈ e2m1 · block_scale · per_tensor_scale.
MXFP8: float8_e4m3fn values, one float8_e8m0fnu scale (a power of two) per 32 elements:
x ≈ e4m3 · 2^(code - 127), code 0 read as a zero scale (comfy-kitchen's e8m0_to_f32).

Block scales are stored in cuBLAS's swizzled layout: the (rows, blocks) scale matrix padded with
zeros to 128-row x 4-column tiles, each tile 512 contiguous bytes in which the scale of (r, c)
sits at (r % 32) · 16 + (r // 32) · 4 + c. A 64x128 input has 128x8 NVFP4 / 128x4 MXFP8 scales.
"""

from __future__ import annotations

import torch

NVFP4_BLOCK = 16
MXFP8_BLOCK = 32
E2M1_MAX = 6.0
E4M3_MAX = 448.0
E8M0_BIAS = 127
# The per-tensor scale that puts a tensor's amax at the top of both levels (e2m1 · e4m3).
NVFP4_AMAX_DIVISOR = E4M3_MAX * E2M1_MAX
# The W4A8 paths' fp8 weight is e2m1 · block scale / this, rounded to e4m3: at most
# 6 · 448 / 8 = 336, inside e4m3's range (no saturation); its per-tensor scale is the NVFP4
# per-tensor scale times this.
W4A8_WEIGHT_DIVISOR = 8.0
# Scale tiles of the swizzled layout.
TILE_ROWS, TILE_COLS = 128, 4
# MXFP8 → row-scaled e4m3 (mxfp8_to_fp8_rowwise) shifts a block's elements down by the gap
# between its exponent and its row's largest; from this shift on every e4m3 (|q| ≤ 448 < 2^9)
# lands at or under 2^-10, half the smallest subnormal, and rounds to ±0, so larger gaps are
# capped here (which keeps 2^-shift a normal float32).
MXFP8_ROWWISE_MAX_SHIFT = 19


def nvfp4_tensor_scale(x: torch.Tensor) -> torch.Tensor:
    """NVFP4 per-tensor scale of x, computed as comfy-kitchen's layout does: amax / (448 · 6)
    in x's dtype (same device, same result), then float32."""
    return (torch.amax(x.abs()) / NVFP4_AMAX_DIVISOR).float().reshape(())


def round_up(value: int, multiple: int) -> int:
    return -(-value // multiple) * multiple


def scale_shape(rows: int, blocks: int) -> tuple[int, int]:
    """Shape of the swizzled scales of a (rows, blocks) scale matrix."""
    return round_up(rows, TILE_ROWS), round_up(blocks, TILE_COLS)


def scale_buffer(rows: int, blocks: int, dtype: torch.dtype, device: torch.device) -> torch.Tensor:
    """The swizzled scales a quantize kernel writes: uninitialized when the kernel writes every
    entry, zeros when the layout pads rows to 128 or blocks to 4 (the padding must read 0); the
    memset costs 4 MB of writes at 8192² (~2% of the NVFP4 quantize's traffic)."""
    shape = scale_shape(rows, blocks)
    if shape == (rows, blocks):
        return torch.empty(shape, dtype=dtype, device=device)
    return torch.zeros(shape, dtype=dtype, device=device)


def swizzled_offsets(rows: torch.Tensor, cols: torch.Tensor, padded_cols: int) -> torch.Tensor:
    """Flat offset of scale (row, col) in the swizzled layout (broadcasting integer tensors).
    The Triton and CUDA kernels use the same formula (triton_blockscaled_kernels.swizzled_offset,
    csrc/nvfp4_quantize.cu)."""
    tile = (rows // TILE_ROWS) * (padded_cols // TILE_COLS) + cols // TILE_COLS
    return tile * 512 + (rows % 32) * 16 + ((rows % TILE_ROWS) // 32) * 4 + cols % TILE_COLS


def to_swizzled(scales: torch.Tensor) -> torch.Tensor:
    """(rows, blocks) scales → swizzled (scale_shape) layout, padding zero."""
    rows, cols = scales.shape
    padded_rows, padded_cols = scale_shape(rows, cols)
    r = torch.arange(rows, device=scales.device)[:, None]
    c = torch.arange(cols, device=scales.device)[None, :]
    out = torch.zeros(padded_rows * padded_cols, dtype=scales.dtype, device=scales.device)
    out[swizzled_offsets(r, c, padded_cols).reshape(-1)] = scales.reshape(-1)
    return out.reshape(padded_rows, padded_cols)


def from_swizzled(swizzled: torch.Tensor, rows: int, cols: int) -> torch.Tensor:
    """The (rows, cols) scales held in a swizzled scale tensor."""
    padded_cols = scale_shape(rows, cols)[1]
    r = torch.arange(rows, device=swizzled.device)[:, None]
    c = torch.arange(cols, device=swizzled.device)[None, :]
    return swizzled.reshape(-1)[swizzled_offsets(r, c, padded_cols)]


# ---- e2m1 (the NVFP4 element) ----

# Round-to-nearest-even boundaries between neighbouring e2m1 magnitudes (0, .5, 1, 1.5, 2, 3,
# 4, 6): the code is how many a value passes; at a tie (>= on one side) it goes to the even
# code, as comfy-kitchen's bit-twiddling conversion rounds.
E2M1_PASS_ABOVE = (0.25, 1.25, 2.5, 5.0)  # ties stay below (to an even code)
E2M1_PASS_AT = (0.75, 1.75, 3.5)  # ties go above (to an even code)


def e2m1_codes(x: torch.Tensor) -> torch.Tensor:
    """float32 values already clamped to ±6 → 4-bit e2m1 codes (uint8), sign from the sign bit
    (-0 keeps it, as comfy-kitchen's conversion does). NaN has no e2m1 code: it gives ±0."""
    magnitude = x.abs()
    code = torch.zeros(x.shape, dtype=torch.uint8, device=x.device)
    for bound in E2M1_PASS_ABOVE:
        code += magnitude > bound
    for bound in E2M1_PASS_AT:
        code += magnitude >= bound
    return code | (torch.signbit(x).to(torch.uint8) << 3)


_E2M1_MAGNITUDES = (0.0, 0.5, 1.0, 1.5, 2.0, 3.0, 4.0, 6.0)
E2M1_VALUES = _E2M1_MAGNITUDES + tuple(-v for v in _E2M1_MAGNITUDES)  # codes 8-15: sign bit set


def e2m1_values(codes: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    table = torch.tensor(E2M1_VALUES, dtype=dtype, device=codes.device)
    return table[codes.long()]


def pack_nibbles(codes: torch.Tensor, hi_first: bool) -> torch.Tensor:
    """(..., 2n) 4-bit codes → (..., n) bytes; hi_first puts the even element high."""
    even, odd = codes[..., 0::2], codes[..., 1::2]
    high, low = (even, odd) if hi_first else (odd, even)
    return (high << 4) | low


def unpack_nibbles(packed: torch.Tensor, hi_first: bool) -> torch.Tensor:
    high, low = packed >> 4, packed & 0x0F
    even, odd = (high, low) if hi_first else (low, high)
    return torch.stack([even, odd], dim=-1).reshape(*packed.shape[:-1], -1)


# ---- e8m0 (the MXFP8 block scale) ----

# Below 2^-8 relative distance from a power of two a float32 log2 can round to the integer.
_NEAR_POWER_OF_TWO = 2.0**-8
_LOG2_E = 1.4426950408889634


def mxfp8_scale_codes(needed: torch.Tensor) -> torch.Tensor:
    """comfy-kitchen's e8m0 rule: ceil(log2(s)) + 127 clamped to [0, 254], s = max(amax / 448,
    2^-127) in float32, with log2 rounded to float32 before the ceil (so s a few ulps above a
    power of two 2^e, which a float32 log2 rounds to e, gives e, not e + 1; this only happens
    for float32 inputs: amax / 448 of a bf16 or fp16 value is never that close). Computed
    exactly here instead of through a log2 whose rounding varies by device: s = 2^e · (1 + f),
    f = 0 gives e; f ≥ 2^-8 gives e + 1; below that log2(1 + f) ≈ f · log2(e), added to e in
    float32 and rounded up. Non-finite s gives 0, as comfy-kitchen's int conversion does on x86.
    """
    mantissa, exponent = torch.frexp(needed)  # needed = mantissa · 2^exponent, mantissa ∈ [.5, 1)
    e = (exponent - 1).float()
    f = mantissa.double() * 2 - 1  # exact: needed / 2^e - 1
    near = (e + (f * _LOG2_E).float()).ceil()
    code = torch.where(f == 0, e, torch.where(f >= _NEAR_POWER_OF_TWO, e + 1, near)) + E8M0_BIAS
    code = torch.where(needed.isfinite(), code.clamp(0, 254), torch.zeros_like(code))
    return code.to(torch.uint8)


def e8m0_to_float(codes: torch.Tensor) -> torch.Tensor:
    """uint8 e8m0 codes → float32 2^(code - 127), code 0 → 0 (comfy-kitchen's reading): the
    code is the float32 exponent field, so the bits are exact on every device (a pow is not)."""
    return (codes.to(torch.int32) << 23).view(torch.float32)
