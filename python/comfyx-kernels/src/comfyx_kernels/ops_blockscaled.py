"""NVFP4 and MXFP8 ops with comfy-kitchen 0.2.40's names, signatures and formats
(see blockscaled.py), plus its `backend=` keyword. Traced calls (torch.compile, subclasses) go
through `torch.ops.comfyx_kernels.*` custom ops, as in ops.py.
"""

from __future__ import annotations

import torch

from .blockscaled import MXFP8_BLOCK, NVFP4_BLOCK, round_up, scale_shape
from .ops import _traced
from .registry import dispatch


def _padded(rows: int, cols: int, multiple: int, pad: bool) -> tuple[int, int]:
    return (round_up(rows, multiple), round_up(cols, multiple)) if pad else (rows, cols)


@torch.library.custom_op("comfyx_kernels::quantize_nvfp4", mutates_args=())
def _quantize_nvfp4_op(
    x: torch.Tensor,
    per_tensor_scale: torch.Tensor,
    epsilon: float,
    pad_16x: bool,
    hi_first: bool,
    backend: str,
) -> tuple[torch.Tensor, torch.Tensor]:
    return dispatch(
        "quantize_nvfp4",
        backend or None,
        x=x,
        per_tensor_scale=per_tensor_scale,
        epsilon=epsilon,
        pad_16x=pad_16x,
        hi_first=hi_first,
    )


@_quantize_nvfp4_op.register_fake
def _(x, per_tensor_scale, epsilon, pad_16x, hi_first, backend):
    rows, cols = _padded(*x.shape, NVFP4_BLOCK, pad_16x)
    return (
        x.new_empty((rows, cols // 2), dtype=torch.uint8),
        x.new_empty(scale_shape(rows, cols // NVFP4_BLOCK), dtype=torch.float8_e4m3fn),
    )


def quantize_nvfp4(
    x: torch.Tensor,
    per_tensor_scale: torch.Tensor,
    epsilon: float = 0.0,
    pad_16x: bool = False,
    hi_first: bool = True,
    *,
    backend: str | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """2-D x → (packed e2m1 uint8 (rows, cols/2), swizzled float8_e4m3fn block scales).

    `per_tensor_scale` is float32 (one element): amax / (448 · 6) for a tensor's own scale.
    `pad_16x` zero-pads rows and columns to multiples of 16 (needed when cols % 16 != 0).
    `hi_first` puts the even-indexed element in the high nibble. `epsilon` is unused, as in
    comfy-kitchen.
    """
    if _traced(x):
        return _quantize_nvfp4_op(x, per_tensor_scale, epsilon, pad_16x, hi_first, backend or "")
    return dispatch(
        "quantize_nvfp4",
        backend,
        x=x,
        per_tensor_scale=per_tensor_scale,
        epsilon=epsilon,
        pad_16x=pad_16x,
        hi_first=hi_first,
    )


@torch.library.custom_op("comfyx_kernels::dequantize_nvfp4", mutates_args=())
def _dequantize_nvfp4_op(
    qx: torch.Tensor,
    per_tensor_scale: torch.Tensor,
    block_scales: torch.Tensor,
    output_type: torch.dtype,
    hi_first: bool,
    backend: str,
) -> torch.Tensor:
    return dispatch(
        "dequantize_nvfp4",
        backend or None,
        qx=qx,
        per_tensor_scale=per_tensor_scale,
        block_scales=block_scales,
        output_type=output_type,
        hi_first=hi_first,
    )


@_dequantize_nvfp4_op.register_fake
def _(qx, per_tensor_scale, block_scales, output_type, hi_first, backend):
    return qx.new_empty((qx.shape[0], 2 * qx.shape[1]), dtype=output_type)


def dequantize_nvfp4(
    qx: torch.Tensor,
    per_tensor_scale: torch.Tensor,
    block_scales: torch.Tensor,
    output_type: torch.dtype = torch.bfloat16,
    hi_first: bool = True,
    *,
    backend: str | None = None,
) -> torch.Tensor:
    """Packed NVFP4 (rows, K/2) → (rows, K) in `output_type`: e2m1 · (per-tensor · block scale),
    the combined scale rounded to `output_type` first (comfy-kitchen's rounding)."""
    if _traced(qx):
        return _dequantize_nvfp4_op(
            qx, per_tensor_scale, block_scales, output_type, hi_first, backend or ""
        )
    return dispatch(
        "dequantize_nvfp4",
        backend,
        qx=qx,
        per_tensor_scale=per_tensor_scale,
        block_scales=block_scales,
        output_type=output_type,
        hi_first=hi_first,
    )


@torch.library.custom_op("comfyx_kernels::nvfp4_to_fp8", mutates_args=())
def _nvfp4_to_fp8_op(
    qx: torch.Tensor, block_scales: torch.Tensor, hi_first: bool, backend: str
) -> torch.Tensor:
    return dispatch(
        "nvfp4_to_fp8", backend or None, qx=qx, block_scales=block_scales, hi_first=hi_first
    )


@_nvfp4_to_fp8_op.register_fake
def _(qx, block_scales, hi_first, backend):
    return qx.new_empty((qx.shape[0], 2 * qx.shape[1]), dtype=torch.float8_e4m3fn)


def nvfp4_to_fp8(
    qx: torch.Tensor,
    block_scales: torch.Tensor,
    hi_first: bool = True,
    *,
    backend: str | None = None,
) -> torch.Tensor:
    """Packed NVFP4 (rows, K/2) → float8_e4m3fn (rows, K): e2m1 · block scale /
    W4A8_WEIGHT_DIVISOR rounded to the nearest e4m3, the weight the W4A8 GEMMs multiply (its
    per-tensor scale is the NVFP4 per-tensor scale · W4A8_WEIGHT_DIVISOR). The rule of the
    fused W4A8 kernel's main loop, so a torch._scaled_mm on this matrix computes what it does."""
    if _traced(qx):
        return _nvfp4_to_fp8_op(qx, block_scales, hi_first, backend or "")
    return dispatch("nvfp4_to_fp8", backend, qx=qx, block_scales=block_scales, hi_first=hi_first)


@torch.library.custom_op("comfyx_kernels::scaled_mm_nvfp4", mutates_args=())
def _scaled_mm_nvfp4_op(
    a: torch.Tensor,
    b: torch.Tensor,
    tensor_scale_a: torch.Tensor,
    tensor_scale_b: torch.Tensor,
    block_scale_a: torch.Tensor,
    block_scale_b: torch.Tensor,
    bias: torch.Tensor | None,
    out_dtype: torch.dtype,
    alpha: torch.Tensor | None,
    backend: str,
) -> torch.Tensor:
    return dispatch(
        "scaled_mm_nvfp4",
        backend or None,
        a=a,
        b=b,
        tensor_scale_a=tensor_scale_a,
        tensor_scale_b=tensor_scale_b,
        block_scale_a=block_scale_a,
        block_scale_b=block_scale_b,
        bias=bias,
        out_dtype=out_dtype,
        alpha=alpha,
    )


@_scaled_mm_nvfp4_op.register_fake
def _(a, b, tensor_scale_a, tensor_scale_b, block_scale_a, block_scale_b, bias, out_dtype, alpha,
      backend):  # fmt: skip
    return a.new_empty((a.shape[0], b.shape[0]), dtype=out_dtype)


def scaled_mm_nvfp4(
    a: torch.Tensor,
    b: torch.Tensor,
    tensor_scale_a: torch.Tensor,
    tensor_scale_b: torch.Tensor,
    block_scale_a: torch.Tensor,
    block_scale_b: torch.Tensor,
    bias: torch.Tensor | None = None,
    out_dtype: torch.dtype | None = None,
    alpha: torch.Tensor | None = None,
    *,
    backend: str | None = None,
) -> torch.Tensor:
    """(a @ b.T) · tensor_scale_a · tensor_scale_b + bias for packed NVFP4 a (M, K/2), b (N, K/2)
    with their swizzled block scales; out_dtype defaults to bfloat16. Native (cuBLASLt) on
    compute capability ≥ 10; elsewhere the eager reference (for bf16 activations on Hopper and
    Ada use nvfp4_linear, which never quantizes the activation)."""
    out_dtype = out_dtype or torch.bfloat16
    args = (a, b, tensor_scale_a, tensor_scale_b, block_scale_a, block_scale_b, bias, out_dtype)
    if _traced(a):
        return _scaled_mm_nvfp4_op(*args, alpha, backend or "")
    names = ("a", "b", "tensor_scale_a", "tensor_scale_b", "block_scale_a", "block_scale_b")
    return dispatch(
        "scaled_mm_nvfp4",
        backend,
        **dict(zip(names, args[:6], strict=True)),
        bias=bias,
        out_dtype=out_dtype,
        alpha=alpha,
    )


@torch.library.custom_op("comfyx_kernels::quantize_mxfp8", mutates_args=())
def _quantize_mxfp8_op(
    x: torch.Tensor, pad_32x: bool, backend: str
) -> tuple[torch.Tensor, torch.Tensor]:
    return dispatch("quantize_mxfp8", backend or None, x=x, pad_32x=pad_32x)


@_quantize_mxfp8_op.register_fake
def _(x, pad_32x, backend):
    rows, cols = _padded(*x.shape, MXFP8_BLOCK, pad_32x)
    return (
        x.new_empty((rows, cols), dtype=torch.float8_e4m3fn),
        x.new_empty(scale_shape(rows, cols // MXFP8_BLOCK), dtype=torch.float8_e8m0fnu),
    )


def quantize_mxfp8(
    x: torch.Tensor, pad_32x: bool = False, *, backend: str | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """2-D x → (float8_e4m3fn data, swizzled float8_e8m0fnu scales), one scale per 32 columns
    (2^ceil(log2(amax / 448))). `pad_32x` zero-pads rows and columns to multiples of 32."""
    if _traced(x):
        return _quantize_mxfp8_op(x, pad_32x, backend or "")
    return dispatch("quantize_mxfp8", backend, x=x, pad_32x=pad_32x)


@torch.library.custom_op("comfyx_kernels::dequantize_mxfp8", mutates_args=())
def _dequantize_mxfp8_op(
    qx: torch.Tensor, block_scales: torch.Tensor, output_type: torch.dtype, backend: str
) -> torch.Tensor:
    return dispatch(
        "dequantize_mxfp8",
        backend or None,
        qx=qx,
        block_scales=block_scales,
        output_type=output_type,
    )


@_dequantize_mxfp8_op.register_fake
def _(qx, block_scales, output_type, backend):
    return qx.new_empty(qx.shape, dtype=output_type)


def dequantize_mxfp8(
    qx: torch.Tensor,
    block_scales: torch.Tensor,
    output_type: torch.dtype = torch.bfloat16,
    *,
    backend: str | None = None,
) -> torch.Tensor:
    """MXFP8 data and its swizzled e8m0 scales → `output_type` (one rounding, of e4m3 · 2^k)."""
    if _traced(qx):
        return _dequantize_mxfp8_op(qx, block_scales, output_type, backend or "")
    return dispatch(
        "dequantize_mxfp8", backend, qx=qx, block_scales=block_scales, output_type=output_type
    )


@torch.library.custom_op("comfyx_kernels::mxfp8_to_fp8_rowwise", mutates_args=())
def _mxfp8_to_fp8_rowwise_op(
    qx: torch.Tensor, block_scales: torch.Tensor, backend: str
) -> tuple[torch.Tensor, torch.Tensor]:
    return dispatch("mxfp8_to_fp8_rowwise", backend or None, qx=qx, block_scales=block_scales)


@_mxfp8_to_fp8_rowwise_op.register_fake
def _(qx, block_scales, backend):
    return qx.new_empty(qx.shape), qx.new_empty((qx.shape[0],), dtype=torch.float32)


def mxfp8_to_fp8_rowwise(
    qx: torch.Tensor, block_scales: torch.Tensor, *, backend: str | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """MXFP8 data (rows, K) and its swizzled e8m0 scales → (float8_e4m3fn (rows, K), float32 row
    scales (rows,)) for a row-wise scaled fp8 GEMM (torch._scaled_mm): each row's scale is its
    largest block scale 2^S, a block with scale 2^s shifts its elements by 2^(s - S), rounded
    to the nearest e4m3. Exact for every element that stays ≥ 2^-6 (e4m3's smallest normal);
    smaller ones are rounded onto the subnormal grid (2^-9), under 2^-10 to ±0
    (NOTES-fp4.md: how often, and the GEMM error it adds)."""
    if _traced(qx):
        return _mxfp8_to_fp8_rowwise_op(qx, block_scales, backend or "")
    return dispatch("mxfp8_to_fp8_rowwise", backend, qx=qx, block_scales=block_scales)


@torch.library.custom_op("comfyx_kernels::scaled_mm_mxfp8", mutates_args=())
def _scaled_mm_mxfp8_op(
    a: torch.Tensor,
    b: torch.Tensor,
    block_scale_a: torch.Tensor,
    block_scale_b: torch.Tensor,
    bias: torch.Tensor | None,
    out_dtype: torch.dtype,
    backend: str,
) -> torch.Tensor:
    return dispatch(
        "scaled_mm_mxfp8",
        backend or None,
        a=a,
        b=b,
        block_scale_a=block_scale_a,
        block_scale_b=block_scale_b,
        bias=bias,
        out_dtype=out_dtype,
    )


@_scaled_mm_mxfp8_op.register_fake
def _(a, b, block_scale_a, block_scale_b, bias, out_dtype, backend):
    return a.new_empty((a.shape[0], b.shape[0]), dtype=out_dtype)


def scaled_mm_mxfp8(
    a: torch.Tensor,
    b: torch.Tensor,
    block_scale_a: torch.Tensor,
    block_scale_b: torch.Tensor,
    bias: torch.Tensor | None = None,
    out_dtype: torch.dtype | None = None,
    *,
    backend: str | None = None,
) -> torch.Tensor:
    """a @ b.T + bias for MXFP8 a (M, K), b (N, K) with their swizzled e8m0 scales; out_dtype
    defaults to bfloat16. Native on compute capability ≥ 10; on sm_89 / sm_90 a Triton GEMM
    applying the 32-element scales on fp8 tensor cores, except from 64 rows on with a bf16
    output: there both operands are rewritten to row-scaled fp8 (mxfp8_to_fp8_rowwise) for
    torch._scaled_mm's row-wise fp8 GEMM, whose product is not bit-equal to the dequantized
    operands' (small elements of blocks far under their row's largest scale lose bits; bf16
    copies and cuBLAS's bf16 GEMM where N % 16 != 0); else the eager reference
    (backends/triton_blockscaled.mxfp8_gemm_route says which and why)."""
    out_dtype = out_dtype or torch.bfloat16
    if _traced(a):
        return _scaled_mm_mxfp8_op(
            a, b, block_scale_a, block_scale_b, bias, out_dtype, backend or ""
        )
    return dispatch(
        "scaled_mm_mxfp8",
        backend,
        a=a,
        b=b,
        block_scale_a=block_scale_a,
        block_scale_b=block_scale_b,
        bias=bias,
        out_dtype=out_dtype,
    )


@torch.library.custom_op("comfyx_kernels::linear_nvfp4_weight", mutates_args=())
def _linear_nvfp4_weight_op(
    x: torch.Tensor,
    weight: torch.Tensor,
    weight_scale: torch.Tensor,
    weight_scale_2: torch.Tensor,
    bias: torch.Tensor | None,
    hi_first: bool,
    input_scale: torch.Tensor | None,
    fp8_activation: bool,
    backend: str,
) -> torch.Tensor:
    return linear_nvfp4_weight(
        x,
        weight,
        weight_scale,
        weight_scale_2,
        bias,
        hi_first,
        input_scale=input_scale,
        fp8_activation=fp8_activation,
        backend=backend or None,
    )


@_linear_nvfp4_weight_op.register_fake
def _(
    x, weight, weight_scale, weight_scale_2, bias, hi_first, input_scale, fp8_activation, backend
):
    return x.new_empty((x.shape[0], weight.shape[0]))


def linear_nvfp4_weight(
    x: torch.Tensor,
    weight: torch.Tensor,
    weight_scale: torch.Tensor,
    weight_scale_2: torch.Tensor,
    bias: torch.Tensor | None = None,
    hi_first: bool = True,
    *,
    input_scale: torch.Tensor | None = None,
    fp8_activation: bool = False,
    backend: str | None = None,
) -> torch.Tensor:
    """2-D x (M, K) @ W.T + bias for a packed NVFP4 weight (N, K/2) with its swizzled block
    scales and per-tensor scale, in x's dtype, without quantizing x (the Triton kernel on
    sm_89+, float32 elsewhere). fp8_activation: the W4A8 variant (x quantized to fp8 with
    `input_scale` or its amax, the weight rounded to e4m3). Most callers want nvfp4_linear."""
    if _traced(x):
        return _linear_nvfp4_weight_op(
            x, weight, weight_scale, weight_scale_2, bias, hi_first, input_scale,
            fp8_activation, backend or "",
        )  # fmt: skip
    stored = {"weight": weight, "weight_scale": weight_scale, "weight_scale_2": weight_scale_2}
    if fp8_activation:
        return dispatch(
            "linear_nvfp4_weight_fp8", backend, x=x, **stored, bias=bias, hi_first=hi_first,
            input_scale=input_scale,
        )  # fmt: skip
    return dispatch("linear_nvfp4_weight", backend, x=x, **stored, bias=bias, hi_first=hi_first)
