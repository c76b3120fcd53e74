"""Linear layers with NVFP4 or MXFP8 weights, from a layer's stored tensors (the ComfyUI
checkpoint keys `weight`, `weight_scale`, `weight_scale_2`, `input_scale`), on the fastest path
the device has:

- CUDA sm_100+ (Blackwell): the activation is quantized (NVFP4 / MXFP8), then cuBLASLt's
  block-scaled GEMM.
- CUDA sm_89 / sm_90, NVFP4: below DEQUANT_MIN_ROWS rows (memory-bound GEMMs) the fused Triton
  GEMM reads the 4-bit weight and dequantizes it in registers ("triton": bf16/fp16 activation
  as it is, exact product); from DEQUANT_MIN_ROWS rows on, the weight is dequantized into a
  transient bf16/fp16 copy (one Triton pass, freed after the call) and cuBLAS runs the GEMM
  ("dequant-bf16": the product of that copy, exactly F.linear's). activation="fp8" opts into
  W4A8 (fp8 tensor cores, about twice the rate, a few % more output error): the activation
  quantized to fp8 per tensor, the weight rounded to e4m3 by one rule (nvfp4_to_fp8), in the
  fused kernel's registers ("triton-fp8") or, from DEQUANT_MIN_ROWS rows on, into a transient
  fp8 copy for cuBLASLt's torch._scaled_mm ("dequant-fp8"). MXFP8 below DEQUANT_MIN_ROWS rows
  (and for float32 activations) quantizes the activation to MXFP8 and runs the Triton fp8 GEMM
  ("triton"); from DEQUANT_MIN_ROWS rows on, bf16 activations are quantized to MXFP8 and both
  operands rewritten to row-scaled fp8 for torch._scaled_mm's row-wise fp8 GEMM ("rowwise-fp8":
  not bit-equal to the dequantized product, see ops_blockscaled.mxfp8_to_fp8_rowwise; the
  weight's copy is transient), fp16 ones (and widths the row-wise GEMM cannot take) take
  "dequant-bf16" as NVFP4 does.
- Anything else (CPU, older GPUs, float32 activations for NVFP4): the weight is dequantized and
  F.linear runs (NVFP4 in float32).

`nvfp4_linear_path` / `mxfp8_linear_path` say which path a call takes and why; the first call
of each (path, reason) is logged at INFO on `comfyx_kernels.linear`.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from . import blockscaled_rules
from .blockscaled import MXFP8_BLOCK, W4A8_WEIGHT_DIVISOR, nvfp4_tensor_scale, round_up
from .constraints import device_capability
from .ops_blockscaled import (
    dequantize_mxfp8,
    dequantize_nvfp4,
    linear_nvfp4_weight,
    nvfp4_to_fp8,
    quantize_mxfp8,
    quantize_nvfp4,
    scaled_mm_mxfp8,
    scaled_mm_nvfp4,
)
from .registry import backend_unavailable_reason

logger = logging.getLogger("comfyx_kernels.linear")
_logged: set[tuple[str, str]] = set()
NATIVE_CAPABILITY = (10, 0)
KERNEL_CAPABILITY = (8, 9)
_HALF = (torch.bfloat16, torch.float16)
NVFP4_ACTIVATIONS = ("bf16", "fp8")
# nvfp4_linear's default activation on sm_89/sm_90: exact (bf16); W4A8 is asked for per call.
NVFP4_ACTIVATION = "bf16"
# Rows (M) from which NVFP4 on sm_89/sm_90 dequantizes the weight for a cuBLAS GEMM instead of
# the fused Triton GEMM. Below the ridge (M ≈ 70, NOTES-fp4.md) the GEMM is memory-bound and one
# read of the 4-bit weight beats writing and reading back a 16-bit copy; above it the fused
# kernel's in-loop conversion limits it to ~300 TFLOP/s (H100), well under cuBLAS. Measured on an
# H100 (bench/kernels_fp4.py, K=3072 N=12288, µs): at 16 rows fused 38 / W4A8 35 against dequant
# 68 / 44; at 64 rows fused 79 / 64 against 70 / 44; at 128 and 256 fused 68 / 54 and 81 / 64
# against 72 / 47 and 75 / 52. The W4A8 crossover lies between 16 and 64 rows; the exact paths
# stay within 10% of each other from 64 rows on.
DEQUANT_MIN_ROWS = 64


@dataclass(frozen=True)
class LinearPath:
    """How a block-scaled linear runs: `name` is "native" (cuBLASLt, sm_100+), "triton"
    (sm_89/sm_90 kernels), for NVFP4 on sm_89/sm_90 also "triton-fp8" (fused W4A8),
    "dequant-bf16" or "dequant-fp8" (a transient dequantized weight, cuBLAS), for MXFP8 on
    sm_89/sm_90 also "rowwise-fp8" (transient row-scaled fp8 operands, torch._scaled_mm), or
    "fallback" (dequantize, any device)."""

    name: str
    reason: str


def _device_path(x: torch.Tensor, kernel_dtypes: tuple[torch.dtype, ...]) -> LinearPath:
    if x.device.type != "cuda":
        return LinearPath("fallback", f"dequantize + F.linear: activation on {x.device}")
    # Dict and attribute lookups only, which Dynamo traces (a graph break per layer cost a compiled
    # Flux model 59 extra Dynamo frames and 7 recompiles on an H100; assume_constant_result made
    # torch 2.11's Dynamo fail building a guard)
    index = x.device.index
    capability = device_capability(index if index is not None else torch.cuda.current_device())
    sm = "sm_{}{}".format(*capability)
    if capability >= NATIVE_CAPABILITY and not backend_unavailable_reason("cuda"):
        return LinearPath("native", f"{sm}: block-scaled tensor cores through cuBLASLt")
    if capability < KERNEL_CAPABILITY:
        return LinearPath("fallback", f"dequantize + F.linear: {sm} has no fp8 (needs sm_89+)")
    unavailable = backend_unavailable_reason("triton")
    if unavailable:
        return LinearPath("fallback", f"dequantize + F.linear: triton unavailable ({unavailable})")
    if x.dtype not in kernel_dtypes:
        return LinearPath("fallback", f"dequantize + F.linear: {x.dtype} activations")
    return LinearPath("triton", f"{sm} (no FP4/MX tensor cores before sm_100)")


def nvfp4_linear_path(x: torch.Tensor, activation: str | None = None) -> LinearPath:
    """The path nvfp4_linear takes for activations like `x` (and `activation`), and why."""
    activation = activation or NVFP4_ACTIVATION
    if activation not in NVFP4_ACTIVATIONS:
        raise ValueError(f"activation must be bf16 or fp8, got {activation!r}")
    path = _device_path(x, _HALF)
    if path.name != "triton":
        return path
    if x.shape[:-1].numel() >= DEQUANT_MIN_ROWS:
        rows = f"{path.reason}, M >= {DEQUANT_MIN_ROWS} rows"
        if activation == "fp8":
            why = "W4A8: weight to a transient fp8 copy (Triton), fp8 activation, cuBLASLt fp8 GEMM"
            return LinearPath("dequant-fp8", f"{rows}: {why}")
        why = f"weight dequantized to a transient {x.dtype} copy (Triton), cuBLAS GEMM"
        return LinearPath("dequant-bf16", f"{rows}: {why}")
    rows = f"{path.reason}, M < {DEQUANT_MIN_ROWS} rows (memory-bound)"
    if activation == "fp8":
        why = "fused Triton W4A8 GEMM, fp8 activation, weight stays 4-bit"
        return LinearPath("triton-fp8", f"{rows}: {why}")
    return LinearPath("triton", f"{rows}: fused Triton NVFP4-weight GEMM, weight stays 4-bit")


def mxfp8_linear_path(x: torch.Tensor, out_features: int | None = None) -> LinearPath:
    """The path mxfp8_linear takes for activations like `x` (and a weight of `out_features`
    rows, where known), and why."""
    path = _device_path(x, (*_HALF, torch.float32))
    if path.name != "triton":
        return path
    if x.dtype in _HALF and x.shape[:-1].numel() >= DEQUANT_MIN_ROWS:
        rows = f"{path.reason}, M >= {DEQUANT_MIN_ROWS} rows"
        k = round_up(x.shape[-1], MXFP8_BLOCK)  # the stored weight's K, whole blocks
        problem = blockscaled_rules.rowwise_fp8_problem(x.device, x.dtype, k, out_features)
        if problem is None:
            # the same call as "triton": scaled_mm_mxfp8 takes its row-wise route from these rows
            why = "activation to MXFP8, both operands to row-scaled fp8, row-wise fp8 GEMM"
            return LinearPath("rowwise-fp8", f"{rows}: {why}")
        # H100, 4096x3072x12288: 1104 µs through the MX-scaled Triton GEMM, 740 µs for
        # comfy-kitchen's eager dequantize + bf16 GEMM, bf16 itself 399 µs
        why = f"weight dequantized to a transient {x.dtype} copy (Triton), cuBLAS GEMM"
        return LinearPath("dequant-bf16", f"{rows}: {why} ({problem})")
    why = "activation to MXFP8, Triton fp8 GEMM with MX scales"
    return LinearPath("triton", f"{path.reason}: {why}")


def _log_once(kind: str, path: LinearPath) -> None:
    key = (kind, path.reason)
    # not while Dynamo traces: it cannot trace a logging call (fullgraph refuses it)
    if key not in _logged and not torch.compiler.is_compiling():
        _logged.add(key)
        logger.info("%s linear: %s (%s)", kind, path.name, path.reason)


def _as_matrix(x: torch.Tensor, k_stored: int) -> torch.Tensor:
    """x (..., K) as (rows, k_stored): checkpoints pad K to whole blocks, x gets zero columns."""
    k = x.shape[-1]
    if k > k_stored:
        raise ValueError(f"activation has {k} features, the quantized weight only {k_stored}")
    x2 = x.reshape(-1, k)
    return F.pad(x2, (0, k_stored - k)) if k < k_stored else x2


def nvfp4_linear(
    x: torch.Tensor,
    weight: torch.Tensor,
    weight_scale: torch.Tensor,
    weight_scale_2: torch.Tensor,
    bias: torch.Tensor | None = None,
    *,
    input_scale: torch.Tensor | None = None,
    out_features: int | None = None,
    hi_first: bool = True,
    activation: str | None = None,
) -> torch.Tensor:
    """x @ W.T + bias for an NVFP4 weight W stored as `weight` (N', K'/2 uint8, rows and K
    padded to 16), `weight_scale` (swizzled float8_e4m3fn block scales) and `weight_scale_2`
    (float32 per-tensor scale). `out_features` (default N') drops padded rows; x may have fewer
    than K' features (zero-padded). `input_scale` is the activation's static per-tensor scale
    where the activation is quantized (NVFP4 on Blackwell, fp8 in the W4A8 paths; default: from
    its amax). `activation` ("bf16" or "fp8", default "bf16") and the number of rows choose the
    sm_89/sm_90 path (nvfp4_linear_path). Output in x's dtype.
    """
    n = out_features or weight.shape[0]
    weight = weight[:n]  # the swizzled scales of the first n rows stay where they are
    x2 = _as_matrix(x, 2 * weight.shape[1])
    path = nvfp4_linear_path(x, activation)
    _log_once("NVFP4", path)
    if path.name == "native":
        scale = input_scale if input_scale is not None else nvfp4_tensor_scale(x2)
        qx, sx = quantize_nvfp4(x2, scale.float().reshape(()), hi_first=hi_first)
        out = scaled_mm_nvfp4(
            qx, weight, scale, weight_scale_2, sx, weight_scale, bias, x.dtype, backend="cuda"
        )
    elif path.name == "dequant-bf16":
        # bf16/fp16 tensor cores at cuBLAS's rate; the copy of this one layer's weight is freed on
        # return (the caching allocator reuses its memory for the next layer's).
        w = dequantize_nvfp4(
            weight, weight_scale_2, weight_scale, x.dtype, hi_first, backend="triton"
        )
        out = F.linear(x2, w, None if bias is None else bias.to(x.dtype))
    elif path.name == "dequant-fp8":
        # fp8_linear's own quantize + cuBLASLt call; quantized_tensor imports this module, so
        # the import waits until the first call.
        from .quantized_tensor import scaled_fp8_linear

        w = nvfp4_to_fp8(weight, weight_scale, hi_first, backend="triton")
        w_scale = weight_scale_2 * W4A8_WEIGHT_DIVISOR
        out = scaled_fp8_linear(x2, w, w_scale, bias, input_scale)
    else:
        out = linear_nvfp4_weight(
            x2,
            weight,
            weight_scale,
            weight_scale_2,
            bias,
            hi_first,
            input_scale=input_scale,
            fp8_activation=path.name == "triton-fp8",
            backend="eager" if path.name == "fallback" else "triton",
        )
    return out.reshape(*x.shape[:-1], n)


def mxfp8_linear(
    x: torch.Tensor,
    weight: torch.Tensor,
    weight_scale: torch.Tensor,
    bias: torch.Tensor | None = None,
    *,
    out_features: int | None = None,
) -> torch.Tensor:
    """x @ W.T + bias for an MXFP8 weight W stored as `weight` (N', K' float8_e4m3fn, padded to
    multiples of 32) and `weight_scale` (swizzled float8_e8m0fnu block scales). On GPUs the
    activation is quantized to MXFP8 first (one kernel), except on sm_89/sm_90 from
    DEQUANT_MIN_ROWS rows on where the row-wise fp8 GEMM cannot take the call (fp16
    activations): there the weight is dequantized for a cuBLAS GEMM. The fallback multiplies the
    dequantized weight with the unquantized activation. mxfp8_linear_path says which path runs.
    Output in x's dtype."""
    n = out_features or weight.shape[0]
    weight = weight[:n]
    x2 = _as_matrix(x, weight.shape[1])
    path = mxfp8_linear_path(x, n)
    _log_once("MXFP8", path)
    if path.name in ("fallback", "dequant-bf16"):
        backend = "eager" if path.name == "fallback" else "triton"
        w = dequantize_mxfp8(weight, weight_scale, x.dtype, backend=backend)
        out = F.linear(x2, w, None if bias is None else bias.to(x.dtype))
    else:
        # quantize_mxfp8 pads rows to 32 only with pad_32x; K is already a multiple of 32.
        # "rowwise-fp8" is the Triton scaled_mm_mxfp8's own route from its row count on.
        qx, sx = quantize_mxfp8(x2)
        backend = "cuda" if path.name == "native" else "triton"
        out = scaled_mm_mxfp8(qx, weight, sx, weight_scale, bias, x.dtype, backend=backend)
    return out.reshape(*x.shape[:-1], n)
