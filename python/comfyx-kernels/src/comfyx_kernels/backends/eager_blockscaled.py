"""Eager (PyTorch) NVFP4 and MXFP8: the reference the kernels match, bit for bit equal to
comfy-kitchen 0.2.40's eager backend on finite inputs (same operations, same roundings).

Divisions take a device tensor as divisor: CUDA divides by a Python number as a multiply by its
reciprocal, which rounds differently from the IEEE divide the CPU (and the kernels) do.
The GEMMs here are references for any device: dequantize both operands exactly to float32 and
multiply (the native block-scaled GEMM on Blackwell is the cuda backend's).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from ..blockscaled import (
    E2M1_MAX,
    E4M3_MAX,
    E8M0_BIAS,
    MXFP8_BLOCK,
    MXFP8_ROWWISE_MAX_SHIFT,
    NVFP4_BLOCK,
    W4A8_WEIGHT_DIVISOR,
    e2m1_codes,
    e2m1_values,
    e8m0_to_float,
    from_swizzled,
    mxfp8_scale_codes,
    pack_nibbles,
    round_up,
    to_swizzled,
    unpack_nibbles,
)
from ..blockscaled_rules import (
    activation_matches_packed,
    bias_matches,
    matrix,
    mxfp8_scales,
    nvfp4_scales,
    optional_scalar,
    quantize_columns,
    same_k,
)
from ..constraints import FLOAT_DTYPES, Constraints, same_device, scalar_tensor
from ..ops import quantize_fp8_dynamic, quantize_per_tensor_fp8
from ..registry import register

DEVICES = frozenset({"cpu", "cuda", "xpu"})
F32 = frozenset({torch.float32})
U8 = frozenset({torch.uint8})
E4M3 = frozenset({torch.float8_e4m3fn})
E8M0 = frozenset({torch.float8_e8m0fnu})

QUANTIZE_NVFP4 = Constraints(
    devices=DEVICES,
    dtypes={"x": FLOAT_DTYPES, "per_tensor_scale": F32},
    rules=(
        same_device("x", "per_tensor_scale"),
        scalar_tensor("per_tensor_scale"),
        matrix("x"),
        quantize_columns(NVFP4_BLOCK, "pad_16x"),
    ),
)
DEQUANTIZE_NVFP4 = Constraints(
    devices=DEVICES,
    dtypes={"qx": U8, "per_tensor_scale": F32, "block_scales": E4M3, "output_type": FLOAT_DTYPES},
    rules=(
        same_device("qx", "per_tensor_scale", "block_scales"),
        scalar_tensor("per_tensor_scale"),
        matrix("qx"),
        nvfp4_scales("qx", "block_scales"),
    ),
)
SCALED_MM_NVFP4 = Constraints(
    devices=DEVICES,
    dtypes={
        "a": U8,
        "b": U8,
        "tensor_scale_a": F32,
        "tensor_scale_b": F32,
        "block_scale_a": E4M3,
        "block_scale_b": E4M3,
        "out_dtype": FLOAT_DTYPES,
    },
    rules=(
        same_device("a", "b", "tensor_scale_a", "tensor_scale_b", "block_scale_a", "block_scale_b"),
        scalar_tensor("tensor_scale_a"),
        scalar_tensor("tensor_scale_b"),
        matrix("a", "b"),
        same_k("a", "b"),
        nvfp4_scales("a", "block_scale_a"),
        nvfp4_scales("b", "block_scale_b"),
        bias_matches("b"),
    ),
)
QUANTIZE_MXFP8 = Constraints(
    devices=DEVICES,
    dtypes={"x": FLOAT_DTYPES},
    rules=(matrix("x"), quantize_columns(MXFP8_BLOCK, "pad_32x")),
)
DEQUANTIZE_MXFP8 = Constraints(
    devices=DEVICES,
    dtypes={"qx": E4M3, "block_scales": E8M0, "output_type": FLOAT_DTYPES},
    rules=(same_device("qx", "block_scales"), matrix("qx"), mxfp8_scales("qx", "block_scales")),
)
SCALED_MM_MXFP8 = Constraints(
    devices=DEVICES,
    dtypes={
        "a": E4M3,
        "b": E4M3,
        "block_scale_a": E8M0,
        "block_scale_b": E8M0,
        "out_dtype": FLOAT_DTYPES,
    },
    rules=(
        same_device("a", "b", "block_scale_a", "block_scale_b"),
        matrix("a", "b"),
        same_k("a", "b"),
        mxfp8_scales("a", "block_scale_a"),
        mxfp8_scales("b", "block_scale_b"),
        bias_matches("b"),
    ),
)


def pad_to_blocks(x: torch.Tensor, block: int, pad: bool) -> torch.Tensor:
    """x zero-padded at the end to whole blocks of rows and columns when `pad` (the quantize ops'
    pad_16x / pad_32x), else x itself."""
    rows, cols = round_up(x.shape[0], block), round_up(x.shape[1], block)
    if not pad or x.shape == (rows, cols):
        return x
    return F.pad(x, (0, cols - x.shape[1], 0, rows - x.shape[0]))


def _device_scalar(value: float, like: torch.Tensor) -> torch.Tensor:
    return torch.full((), value, dtype=torch.float32, device=like.device)


@register("eager", "quantize_nvfp4", QUANTIZE_NVFP4)
def quantize_nvfp4(
    x: torch.Tensor,
    per_tensor_scale: torch.Tensor,
    epsilon: float = 0.0,  # accepted and unused, as in comfy-kitchen
    pad_16x: bool = False,
    hi_first: bool = True,
) -> tuple[torch.Tensor, torch.Tensor]:
    x = pad_to_blocks(x, NVFP4_BLOCK, pad_16x)
    rows, cols = x.shape
    blocks = x.reshape(rows, cols // NVFP4_BLOCK, NVFP4_BLOCK)
    block_scale = blocks.abs().amax(dim=-1).float() / _device_scalar(E2M1_MAX, x)
    per_tensor = per_tensor_scale.reshape(()).float()
    scale_fp8 = (block_scale / per_tensor).clamp(max=E4M3_MAX).to(torch.float8_e4m3fn)
    total = per_tensor * scale_fp8.float()
    zero = total == 0
    scaled = blocks.float() / torch.where(zero, torch.ones_like(total), total).unsqueeze(-1)
    scaled = torch.where(zero.unsqueeze(-1), torch.zeros_like(scaled), scaled)
    codes = e2m1_codes(scaled.clamp(-E2M1_MAX, E2M1_MAX).reshape(rows, cols))
    return pack_nibbles(codes, hi_first), to_swizzled(scale_fp8)


def nvfp4_block_scales(block_scales: torch.Tensor, rows: int, cols: int) -> torch.Tensor:
    """The (rows, cols / 16) float8 block scales of a swizzled NVFP4 scale tensor."""
    return from_swizzled(block_scales, rows, cols // NVFP4_BLOCK)


@register("eager", "dequantize_nvfp4", DEQUANTIZE_NVFP4)
def dequantize_nvfp4(
    qx: torch.Tensor,
    per_tensor_scale: torch.Tensor,
    block_scales: torch.Tensor,
    output_type: torch.dtype = torch.bfloat16,
    hi_first: bool = True,
) -> torch.Tensor:
    rows, cols = qx.shape[0], 2 * qx.shape[1]
    values = e2m1_values(unpack_nibbles(qx, hi_first), output_type)
    scales = nvfp4_block_scales(block_scales, rows, cols)
    # The combined scale is rounded to the output dtype first, as comfy-kitchen does.
    total = per_tensor_scale.reshape(()).to(output_type) * scales.to(output_type)
    blocks = values.reshape(rows, -1, NVFP4_BLOCK) * total.unsqueeze(-1)
    return blocks.reshape(rows, cols)


def dequantize_nvfp4_exact(
    qx: torch.Tensor, per_tensor_scale: torch.Tensor, block_scales: torch.Tensor, hi_first: bool
) -> torch.Tensor:
    """e2m1 · block scale · per-tensor scale in float64 (exact): what a GEMM should multiply."""
    rows, cols = qx.shape[0], 2 * qx.shape[1]
    values = e2m1_values(unpack_nibbles(qx, hi_first), torch.float64)
    scales = nvfp4_block_scales(block_scales, rows, cols).double()
    blocks = values.reshape(rows, -1, NVFP4_BLOCK) * scales.unsqueeze(-1)
    return blocks.reshape(rows, cols) * per_tensor_scale.reshape(()).double()


def _finish(out: torch.Tensor, bias: torch.Tensor | None, out_dtype: torch.dtype) -> torch.Tensor:
    if bias is not None:
        out = out + bias.double()
    return out.to(out_dtype)


@register("eager", "scaled_mm_nvfp4", SCALED_MM_NVFP4)
def scaled_mm_nvfp4(
    a: torch.Tensor,
    b: torch.Tensor,
    tensor_scale_a: torch.Tensor,
    tensor_scale_b: torch.Tensor,
    block_scale_a: torch.Tensor,
    block_scale_b: torch.Tensor,
    bias: torch.Tensor | None = None,
    out_dtype: torch.dtype = torch.bfloat16,
    alpha: torch.Tensor | None = None,
) -> torch.Tensor:
    # Both operands packed the same way: the nibble order permutes K alike in a and b, so the
    # product does not depend on it (which is why comfy-kitchen's GEMM takes no hi_first).
    # alpha is comfy-kitchen's precomputed tensor_scale_a · tensor_scale_b; the scales are used.
    da = dequantize_nvfp4_exact(a, tensor_scale_a, block_scale_a, True)
    db = dequantize_nvfp4_exact(b, tensor_scale_b, block_scale_b, True)
    return _finish(da @ db.T, bias, out_dtype)


@register("eager", "quantize_mxfp8", QUANTIZE_MXFP8)
def quantize_mxfp8(x: torch.Tensor, pad_32x: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
    x = pad_to_blocks(x, MXFP8_BLOCK, pad_32x)
    rows, cols = x.shape
    blocks = x.reshape(rows, cols // MXFP8_BLOCK, MXFP8_BLOCK)
    amax = blocks.abs().amax(dim=-1).float()
    needed = (amax / _device_scalar(E4M3_MAX, x)).clamp(min=2.0**-127)
    codes = mxfp8_scale_codes(needed)
    zero = amax == 0
    scale = torch.where(zero, torch.ones_like(amax), e8m0_to_float(codes))
    scaled = blocks.float() / scale.unsqueeze(-1)
    scaled = torch.where(zero.unsqueeze(-1), torch.zeros_like(scaled), scaled)
    data = scaled.clamp(-E4M3_MAX, E4M3_MAX).reshape(rows, cols).to(torch.float8_e4m3fn)
    codes = torch.where(zero, torch.zeros_like(codes), codes)
    return data, to_swizzled(codes).view(torch.float8_e8m0fnu)


def mxfp8_block_scales(block_scales: torch.Tensor, rows: int, cols: int) -> torch.Tensor:
    """float32 scales (rows, cols / 32) of a swizzled e8m0 scale tensor."""
    codes = from_swizzled(block_scales.view(torch.uint8), rows, cols // MXFP8_BLOCK)
    return e8m0_to_float(codes)


@register("eager", "dequantize_mxfp8", DEQUANTIZE_MXFP8)
def dequantize_mxfp8(
    qx: torch.Tensor, block_scales: torch.Tensor, output_type: torch.dtype = torch.bfloat16
) -> torch.Tensor:
    rows, cols = qx.shape
    scales = mxfp8_block_scales(block_scales, rows, cols)
    blocks = qx.float().reshape(rows, -1, MXFP8_BLOCK) * scales.unsqueeze(-1)
    return blocks.reshape(rows, cols).to(output_type)


def dequantize_mxfp8_exact(qx: torch.Tensor, block_scales: torch.Tensor) -> torch.Tensor:
    rows, cols = qx.shape
    scales = mxfp8_block_scales(block_scales, rows, cols).double()
    return (qx.double().reshape(rows, -1, MXFP8_BLOCK) * scales.unsqueeze(-1)).reshape(rows, cols)


MXFP8_TO_FP8_ROWWISE = Constraints(
    devices=DEVICES,
    dtypes={"qx": E4M3, "block_scales": E8M0},
    rules=(same_device("qx", "block_scales"), matrix("qx"), mxfp8_scales("qx", "block_scales")),
)


def _rowwise_factors(codes: torch.Tensor, top: torch.Tensor) -> torch.Tensor:
    """float32 2^-(top - code) per block (int32 codes, top their row's largest), the gap capped
    at MXFP8_ROWWISE_MAX_SHIFT; 0 for code 0, which is a zero scale (e8m0_to_float)."""
    shift = (top - codes).clamp(max=MXFP8_ROWWISE_MAX_SHIFT)
    factor = ((E8M0_BIAS - shift) << 23).view(torch.float32)
    return torch.where(codes == 0, torch.zeros_like(factor), factor)


@register("eager", "mxfp8_to_fp8_rowwise", MXFP8_TO_FP8_ROWWISE)
def mxfp8_to_fp8_rowwise(
    qx: torch.Tensor, block_scales: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """MXFP8 → (e4m3 (rows, K), float32 row scales (rows,)): each row scaled by its largest block
    scale 2^S, each element q of a block with scale 2^s rewritten as e4m3(q · 2^(s - S)), one
    rounding to nearest even (the product is exact in float32). Exact unless q · 2^(s - S) falls
    under e4m3's normal range (2^-6): then it is rounded onto the subnormal grid (2^-9)."""
    rows, cols = qx.shape
    codes = from_swizzled(block_scales.view(torch.uint8), rows, cols // MXFP8_BLOCK).int()
    top = codes.amax(dim=1, keepdim=True) if cols else codes.new_zeros((rows, 1))
    factors = _rowwise_factors(codes, top)
    blocks = qx.float().reshape(rows, -1, MXFP8_BLOCK) * factors.unsqueeze(-1)
    return blocks.reshape(rows, cols).to(torch.float8_e4m3fn), e8m0_to_float(top.reshape(rows))


@register("eager", "scaled_mm_mxfp8", SCALED_MM_MXFP8)
def scaled_mm_mxfp8(
    a: torch.Tensor,
    b: torch.Tensor,
    block_scale_a: torch.Tensor,
    block_scale_b: torch.Tensor,
    bias: torch.Tensor | None = None,
    out_dtype: torch.dtype = torch.bfloat16,
) -> torch.Tensor:
    da = dequantize_mxfp8_exact(a, block_scale_a)
    db = dequantize_mxfp8_exact(b, block_scale_b)
    return _finish(da @ db.T, bias, out_dtype)


LINEAR_NVFP4_WEIGHT = Constraints(
    devices=DEVICES,
    dtypes={"x": FLOAT_DTYPES, "weight": U8, "weight_scale": E4M3, "weight_scale_2": F32},
    rules=(
        same_device("x", "weight", "weight_scale", "weight_scale_2"),
        scalar_tensor("weight_scale_2"),
        matrix("x", "weight"),
        activation_matches_packed("x", "weight"),
        nvfp4_scales("weight", "weight_scale"),
        bias_matches("weight"),
    ),
)


@register("eager", "linear_nvfp4_weight", LINEAR_NVFP4_WEIGHT)
def linear_nvfp4_weight(
    x: torch.Tensor,
    weight: torch.Tensor,
    weight_scale: torch.Tensor,
    weight_scale_2: torch.Tensor,
    bias: torch.Tensor | None = None,
    hi_first: bool = True,
) -> torch.Tensor:
    """x @ dequantize(weight).T + bias in float32 (the weight dequantized exactly, then rounded
    once to float32): the reference of the fused kernel, and the CPU path."""
    w = dequantize_nvfp4_exact(weight, weight_scale_2, weight_scale, hi_first).float()
    out = F.linear(x.float(), w, None if bias is None else bias.float())
    return out.to(x.dtype)


LINEAR_NVFP4_WEIGHT_FP8 = Constraints(
    devices=DEVICES,
    dtypes=LINEAR_NVFP4_WEIGHT.dtypes,
    rules=(*LINEAR_NVFP4_WEIGHT.rules, optional_scalar("input_scale")),
)


def quantize_activation_fp8(
    x: torch.Tensor, input_scale: torch.Tensor | None
) -> tuple[torch.Tensor, torch.Tensor]:
    """x → (e4m3, float32 scale): static `input_scale`, else amax / 448 (one launch on GPUs)."""
    if input_scale is None:
        return quantize_fp8_dynamic(x)
    scale = input_scale.float().reshape(())
    return quantize_per_tensor_fp8(x, scale), scale


NVFP4_TO_FP8 = Constraints(
    devices=DEVICES,
    dtypes={"qx": U8, "block_scales": E4M3},
    rules=(same_device("qx", "block_scales"), matrix("qx"), nvfp4_scales("qx", "block_scales")),
)


@register("eager", "nvfp4_to_fp8", NVFP4_TO_FP8)
def nvfp4_to_fp8(
    qx: torch.Tensor, block_scales: torch.Tensor, hi_first: bool = True
) -> torch.Tensor:
    """The W4A8 weight: e2m1 · block scale / W4A8_WEIGHT_DIVISOR (exact in float64 and float32,
    at most 336) rounded to the nearest e4m3."""
    one = torch.ones((), device=qx.device)
    w = dequantize_nvfp4_exact(qx, one, block_scales, hi_first) / W4A8_WEIGHT_DIVISOR
    return w.float().to(torch.float8_e4m3fn)


@register("eager", "linear_nvfp4_weight_fp8", LINEAR_NVFP4_WEIGHT_FP8)
def linear_nvfp4_weight_fp8(
    x: torch.Tensor,
    weight: torch.Tensor,
    weight_scale: torch.Tensor,
    weight_scale_2: torch.Tensor,
    bias: torch.Tensor | None = None,
    hi_first: bool = True,
    input_scale: torch.Tensor | None = None,
) -> torch.Tensor:
    """The opt-in W4A8 path's reference: the fp8 activation times the e4m3-rounded weight,
    in float64, scaled by input scale · per-tensor scale · 8."""
    qx, x_scale = quantize_activation_fp8(x, input_scale)
    w8 = nvfp4_to_fp8(weight, weight_scale, hi_first)
    w_scale = weight_scale_2.double() * W4A8_WEIGHT_DIVISOR
    out = (qx.double() @ w8.double().T) * (x_scale.double() * w_scale)
    return _finish(out, bias, x.dtype)
