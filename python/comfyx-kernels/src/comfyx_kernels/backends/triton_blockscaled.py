"""Triton backend for NVFP4 and MXFP8: quantize / dequantize kernels, the NVFP4-weight GEMM
(bf16 or fp16 activations) and the MXFP8 GEMM, for sm_89 and newer (or the CPU under
TRITON_INTERPRET=1). Shape rules are the eager backend's; only devices, dtypes and the
compute capability differ.
"""

from __future__ import annotations

import logging

import torch
import triton

from .. import blockscaled_rules
from ..blockscaled import MXFP8_BLOCK, NVFP4_BLOCK, scale_buffer, scale_shape
from ..constraints import Constraints
from ..registry import register
from . import eager_blockscaled as eager
from . import triton_blockscaled_kernels as kernels
from .triton import DEVICES, FP8_CAPABILITY, _size_class
from .triton_gemm_kernels import m_bucket, mxfp8_gemm_kernel, nvfp4_weight_gemm_kernel

HALF_DTYPES = frozenset({torch.bfloat16, torch.float16})
# Rows (M) from which scaled_mm_mxfp8 leaves the Triton MXFP8 GEMM (244 TFLOP/s at 8192³ on an
# H100, 0.31x cuBLAS's bf16, NOTES-fp4.md) for a library GEMM of transient copies of both
# operands: with a bf16 output on sm_89 / sm_90, row-scaled fp8 copies (mxfp8_to_fp8_rowwise,
# two memory-bound passes of ~45 µs at 8192²) for torch._scaled_mm's row-wise fp8 GEMM (~780 µs,
# as the per-tensor one: ~1.6x bf16 predicted); where that GEMM cannot run, bf16 copies (exact)
# for cuBLAS's bf16 GEMM (1675 µs measured, 0.85x). mxfp8_linear's paths start at the same count.
MXFP8_DEQUANT_MIN_ROWS = 64
# Where scaled_mm_mxfp8 went and why, at DEBUG beside the registry's own decisions.
logger = logging.getLogger("comfyx_kernels.dispatch")


def _like_eager(constraints: Constraints, **dtypes: frozenset) -> Constraints:
    return Constraints(
        devices=DEVICES,
        dtypes={**constraints.dtypes, **dtypes},
        min_capability=FP8_CAPABILITY,
        rules=constraints.rules,
    )


def _tile_grid(rows: int, cols: int):
    return lambda meta: (triton.cdiv(rows, meta["BM"]), triton.cdiv(cols, meta["BK"]))


@register("triton", "quantize_nvfp4", _like_eager(eager.QUANTIZE_NVFP4))
def quantize_nvfp4(
    x: torch.Tensor,
    per_tensor_scale: torch.Tensor,
    epsilon: float = 0.0,
    pad_16x: bool = False,
    hi_first: bool = True,
) -> tuple[torch.Tensor, torch.Tensor]:
    x = eager.pad_to_blocks(x, NVFP4_BLOCK, pad_16x).contiguous()
    rows, cols = x.shape
    q = torch.empty((rows, cols // 2), dtype=torch.uint8, device=x.device)
    scales = scale_buffer(rows, cols // NVFP4_BLOCK, torch.float8_e4m3fn, x.device)
    if x.numel():
        kernels.quantize_nvfp4_kernel[_tile_grid(rows, cols)](
            x, per_tensor_scale, q, scales, rows, cols, scales.shape[1], _size_class(x.numel()),
            HI_FIRST=hi_first,
        )  # fmt: skip
    return q, scales


def _unpack_nvfp4(kernel, qx, block_scales, output_type, hi_first, *scale) -> torch.Tensor:
    """Launch an elementwise NVFP4 kernel (dequantize, or to fp8): packed (rows, K/2) in,
    (rows, K) of `output_type` out; `scale` is the per-tensor scale where the kernel takes one."""
    qx = qx.contiguous()
    rows, cols = qx.shape[0], 2 * qx.shape[1]
    out = torch.empty((rows, cols), dtype=output_type, device=qx.device)
    if out.numel():
        padded_cols = scale_shape(rows, cols // NVFP4_BLOCK)[1]
        kernel[_tile_grid(rows, cols)](
            qx, *scale, block_scales.contiguous(), out, rows, cols, padded_cols,
            _size_class(out.numel()), HI_FIRST=hi_first,
        )  # fmt: skip
    return out


@register("triton", "dequantize_nvfp4", _like_eager(eager.DEQUANTIZE_NVFP4))
def dequantize_nvfp4(
    qx: torch.Tensor,
    per_tensor_scale: torch.Tensor,
    block_scales: torch.Tensor,
    output_type: torch.dtype = torch.bfloat16,
    hi_first: bool = True,
) -> torch.Tensor:
    kernel = kernels.dequantize_nvfp4_kernel
    return _unpack_nvfp4(kernel, qx, block_scales, output_type, hi_first, per_tensor_scale)


@register("triton", "nvfp4_to_fp8", _like_eager(eager.NVFP4_TO_FP8))
def nvfp4_to_fp8(
    qx: torch.Tensor, block_scales: torch.Tensor, hi_first: bool = True
) -> torch.Tensor:
    kernel = kernels.nvfp4_to_fp8_kernel
    return _unpack_nvfp4(kernel, qx, block_scales, torch.float8_e4m3fn, hi_first)


@register("triton", "quantize_mxfp8", _like_eager(eager.QUANTIZE_MXFP8))
def quantize_mxfp8(x: torch.Tensor, pad_32x: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
    x = eager.pad_to_blocks(x, MXFP8_BLOCK, pad_32x).contiguous()
    rows, cols = x.shape
    q = torch.empty((rows, cols), dtype=torch.float8_e4m3fn, device=x.device)
    scales = scale_buffer(rows, cols // MXFP8_BLOCK, torch.uint8, x.device)
    if x.numel():
        kernels.quantize_mxfp8_kernel[_tile_grid(rows, cols)](
            x, q, scales, rows, cols, scales.shape[1], _size_class(x.numel())
        )
    return q, scales.view(torch.float8_e8m0fnu)


@register("triton", "dequantize_mxfp8", _like_eager(eager.DEQUANTIZE_MXFP8))
def dequantize_mxfp8(
    qx: torch.Tensor, block_scales: torch.Tensor, output_type: torch.dtype = torch.bfloat16
) -> torch.Tensor:
    qx = qx.contiguous()
    rows, cols = qx.shape
    out = torch.empty((rows, cols), dtype=output_type, device=qx.device)
    if out.numel():
        padded_cols = scale_shape(rows, cols // MXFP8_BLOCK)[1]
        kernels.dequantize_mxfp8_kernel[_tile_grid(rows, cols)](
            qx, block_scales.contiguous().view(torch.uint8), out, rows, cols, padded_cols,
            _size_class(out.numel()),
        )  # fmt: skip
    return out


# Row scales per program of mxfp8_row_scale_kernel, and scales it reads per row at a time.
_ROW_SCALE_ROWS, _ROW_SCALE_COLS = 32, 64


@register("triton", "mxfp8_to_fp8_rowwise", _like_eager(eager.MXFP8_TO_FP8_ROWWISE))
def mxfp8_to_fp8_rowwise(
    qx: torch.Tensor, block_scales: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    qx = qx.contiguous()
    rows, cols = qx.shape
    out = torch.empty((rows, cols), dtype=torch.float8_e4m3fn, device=qx.device)
    row_scale = torch.empty(rows, dtype=torch.float32, device=qx.device)
    if not rows:
        return out, row_scale
    blocks = cols // MXFP8_BLOCK
    padded_cols = scale_shape(rows, blocks)[1]
    scales = block_scales.contiguous().view(torch.uint8)
    kernels.mxfp8_row_scale_kernel[(triton.cdiv(rows, _ROW_SCALE_ROWS),)](
        scales, row_scale, rows, blocks, padded_cols, BM=_ROW_SCALE_ROWS, BC=_ROW_SCALE_COLS
    )
    if cols:
        kernels.mxfp8_to_fp8_rowwise_kernel[_tile_grid(rows, cols)](
            qx, scales, row_scale, out, rows, cols, padded_cols, _size_class(out.numel())
        )
    return out, row_scale


def mxfp8_gemm_route(
    device: torch.device, m: int, k: int, n: int, out_dtype: torch.dtype
) -> tuple[str, str]:
    """How scaled_mm_mxfp8 multiplies (M, K) by (N, K) into out_dtype here, and why: "rowwise-fp8"
    (both operands to row-scaled fp8, torch._scaled_mm's row-wise GEMM; not bit-equal to the
    dequantized product, see mxfp8_to_fp8_rowwise), "dequant-bf16" (both dequantized to bf16,
    exact, cuBLAS's GEMM) or "kernel" (the Triton MXFP8 GEMM)."""
    if m < MXFP8_DEQUANT_MIN_ROWS or not k:
        return "kernel", f"M={m} < {MXFP8_DEQUANT_MIN_ROWS} rows or K=0"
    problem = blockscaled_rules.rowwise_fp8_problem(device, out_dtype, k, n)
    if problem is None:
        return "rowwise-fp8", f"M={m} >= {MXFP8_DEQUANT_MIN_ROWS} rows, row-wise fp8 GEMM"
    if out_dtype == torch.bfloat16:
        return "dequant-bf16", f"M={m} >= {MXFP8_DEQUANT_MIN_ROWS} rows, but {problem}"
    return "kernel", f"{out_dtype} output ({problem})"


def _rowwise_fp8_gemm(a, b, block_scale_a, block_scale_b, bias) -> torch.Tensor:
    qa, row_scale_a = mxfp8_to_fp8_rowwise(a, block_scale_a)
    qb, row_scale_b = mxfp8_to_fp8_rowwise(b, block_scale_b)
    # bias in bf16, as the dequant path's F.linear takes it; b column-major, as cuBLASLt wants it
    return torch._scaled_mm(
        qa, qb.t(), scale_a=row_scale_a.reshape(-1, 1), scale_b=row_scale_b.reshape(1, -1),
        bias=None if bias is None else bias.to(torch.bfloat16), out_dtype=torch.bfloat16,
    )  # fmt: skip


def _dequantized_gemm(a, b, block_scale_a, block_scale_b, bias) -> torch.Tensor:
    # the product of the dequantized operands, as the kernel's, rounded once to bf16 by cuBLAS
    a16 = dequantize_mxfp8(a, block_scale_a, torch.bfloat16)
    b16 = dequantize_mxfp8(b, block_scale_b, torch.bfloat16)
    bias16 = None if bias is None else bias.to(torch.bfloat16)
    return torch.nn.functional.linear(a16, b16, bias16)


@register("triton", "scaled_mm_mxfp8", _like_eager(eager.SCALED_MM_MXFP8))
def scaled_mm_mxfp8(
    a: torch.Tensor,
    b: torch.Tensor,
    block_scale_a: torch.Tensor,
    block_scale_b: torch.Tensor,
    bias: torch.Tensor | None = None,
    out_dtype: torch.dtype = torch.bfloat16,
) -> torch.Tensor:
    a, b = a.contiguous(), b.contiguous()
    (m, k), n = a.shape, b.shape[0]
    route, reason = mxfp8_gemm_route(a.device, m, k, n, out_dtype)
    if logger.isEnabledFor(logging.DEBUG):
        logger.debug("scaled_mm_mxfp8 (triton): %s: %s", route, reason)
    if route == "rowwise-fp8":
        return _rowwise_fp8_gemm(a, b, block_scale_a, block_scale_b, bias)
    if route == "dequant-bf16":
        return _dequantized_gemm(a, b, block_scale_a, block_scale_b, bias)
    out = torch.empty((m, n), dtype=out_dtype, device=a.device)
    if not out.numel():
        return out
    if k == 0:
        return out.zero_() if bias is None else out.copy_(bias.expand(m, n))
    blocks = k // MXFP8_BLOCK
    grid = lambda meta: (triton.cdiv(m, meta["BM"]) * triton.cdiv(n, meta["BN"]),)  # noqa: E731
    mxfp8_gemm_kernel[grid](
        a, b, block_scale_a.contiguous().view(torch.uint8),
        block_scale_b.contiguous().view(torch.uint8), bias if bias is not None else out, out,
        m, n, k, out.stride(0), scale_shape(m, blocks)[1], scale_shape(n, blocks)[1], m_bucket(m),
        HAS_BIAS=bias is not None,
    )  # fmt: skip
    return out


def _nvfp4_weight_gemm(x, x_scale, weight, weight_scale, weight_scale_2, bias, hi_first, out_dtype):
    weight = weight.contiguous()
    (m, k), n = x.shape, weight.shape[0]
    out = torch.empty((m, n), dtype=out_dtype, device=x.device)
    if not out.numel():
        return out
    if k == 0:
        return out.zero_() if bias is None else out.copy_(bias.expand(m, n))
    grid = lambda meta: (triton.cdiv(m, meta["BM"]) * triton.cdiv(n, meta["BN"]),)  # noqa: E731
    nvfp4_weight_gemm_kernel[grid](
        x, weight, weight_scale.contiguous(), weight_scale_2,
        x_scale if x_scale is not None else weight_scale_2, bias if bias is not None else out,
        out, m, n, k, x.stride(0), out.stride(0), scale_shape(n, k // NVFP4_BLOCK)[1],
        m_bucket(m), HAS_BIAS=bias is not None, HI_FIRST=hi_first, FP8_ACT=x_scale is not None,
    )  # fmt: skip
    return out


@register(
    "triton",
    "linear_nvfp4_weight",
    _like_eager(eager.LINEAR_NVFP4_WEIGHT, x=HALF_DTYPES),
)
def linear_nvfp4_weight(
    x: torch.Tensor,
    weight: torch.Tensor,
    weight_scale: torch.Tensor,
    weight_scale_2: torch.Tensor,
    bias: torch.Tensor | None = None,
    hi_first: bool = True,
) -> torch.Tensor:
    x = x if x.stride(-1) == 1 else x.contiguous()
    return _nvfp4_weight_gemm(
        x, None, weight, weight_scale, weight_scale_2, bias, hi_first, x.dtype
    )


@register(
    "triton",
    "linear_nvfp4_weight_fp8",
    _like_eager(eager.LINEAR_NVFP4_WEIGHT_FP8, x=HALF_DTYPES),
)
def linear_nvfp4_weight_fp8(
    x: torch.Tensor,
    weight: torch.Tensor,
    weight_scale: torch.Tensor,
    weight_scale_2: torch.Tensor,
    bias: torch.Tensor | None = None,
    hi_first: bool = True,
    input_scale: torch.Tensor | None = None,
) -> torch.Tensor:
    qx, x_scale = eager.quantize_activation_fp8(x, input_scale)
    return _nvfp4_weight_gemm(
        qx, x_scale, weight, weight_scale, weight_scale_2, bias, hi_first, x.dtype
    )
