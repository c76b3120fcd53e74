"""Linear layers with NVFP4 or MXFP8 weights, from a layer's stored tensors (the ComfyUI
checkpoint keys `weight`, `weight_scale`, `weight_scale_2`, `input_scale`), on the fastest path
the device has:

- CUDA sm_100+ (Blackwell): the activation is quantized (NVFP4 / MXFP8), then cuBLASLt's
  block-scaled GEMM.
- CUDA sm_89 / sm_90: NVFP4 weights go through the fused Triton GEMM with the bf16/fp16
  activation as it is (the weight stays 4-bit in memory, the product is exact), or, opted in
  with activation="fp8", the W4A8 variant: the activation
  quantized to fp8 per tensor and the weight tile rounded to e4m3 in registers, on fp8 tensor
  cores (about twice the rate) for a few % more output error. MXFP8 quantizes the activation
  to MXFP8 and runs the Triton fp8 GEMM.
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

from .blockscaled import nvfp4_tensor_scale
from .ops_blockscaled import (
    dequantize_mxfp8,
    linear_nvfp4_weight,
    quantize_mxfp8,
    quantize_nvfp4,
    scaled_mm_mxfp8,
    scaled_mm_nvfp4,
)
from .registry import list_backends

logger = logging.getLogger("comfyx_kernels.linear")
_logged: set[tuple[str, str]] = set()
NATIVE_CAPABILITY = (10, 0)
KERNEL_CAPABILITY = (8, 9)
_HALF = (torch.bfloat16, torch.float16)
NVFP4_ACTIVATIONS = ("bf16", "fp8")
# nvfp4_linear's default activation on sm_89/sm_90: exact (bf16); W4A8 is asked for per call.
NVFP4_ACTIVATION = "bf16"


@dataclass(frozen=True)
class LinearPath:
    """How a block-scaled linear runs: `name` is "native" (cuBLASLt, sm_100+), "triton"
    (sm_89/sm_90 kernels), "triton-fp8" (NVFP4's opt-in W4A8) or "fallback" (dequantize)."""

    name: str
    reason: str


def _unavailable(backend: str) -> str:
    """Why `backend` cannot run here ("" when it can)."""
    return next(s.reason for s in list_backends() if s.name == backend)


def _device_path(x: torch.Tensor, kernel_dtypes: tuple[torch.dtype, ...]) -> LinearPath:
    if x.device.type != "cuda":
        return LinearPath("fallback", f"dequantize + F.linear: activation on {x.device}")
    capability = torch.cuda.get_device_capability(x.device)
    sm = "sm_{}{}".format(*capability)
    if capability >= NATIVE_CAPABILITY and not _unavailable("cuda"):
        return LinearPath("native", f"{sm}: block-scaled tensor cores through cuBLASLt")
    if capability < KERNEL_CAPABILITY:
        return LinearPath("fallback", f"dequantize + F.linear: {sm} has no fp8 (needs sm_89+)")
    unavailable = _unavailable("triton")
    if unavailable:
        return LinearPath("fallback", f"dequantize + F.linear: triton unavailable ({unavailable})")
    if x.dtype not in kernel_dtypes:
        return LinearPath("fallback", f"dequantize + F.linear: {x.dtype} activations")
    return LinearPath("triton", f"{sm}: Triton kernel (no FP4/MX tensor cores before sm_100)")


def nvfp4_linear_path(x: torch.Tensor, activation: str | None = None) -> LinearPath:
    """The path nvfp4_linear takes for activations like `x` (and `activation`), and why."""
    activation = activation or NVFP4_ACTIVATION
    if activation not in NVFP4_ACTIVATIONS:
        raise ValueError(f"activation must be bf16 or fp8, got {activation!r}")
    path = _device_path(x, _HALF)
    if path.name != "triton":
        return path
    if activation == "fp8":
        return LinearPath("triton-fp8", f"{path.reason}: W4A8 GEMM, fp8 activation, 4-bit weight")
    return LinearPath("triton", f"{path.reason}: fused NVFP4-weight GEMM, weight stays 4-bit")


def mxfp8_linear_path(x: torch.Tensor) -> LinearPath:
    """The path mxfp8_linear takes for activations like `x`, and why."""
    path = _device_path(x, (*_HALF, torch.float32))
    if path.name == "triton":
        return LinearPath("triton", f"{path.reason}: activation to MXFP8, fp8 GEMM with MX scales")
    return path


def _log_once(kind: str, path: LinearPath) -> None:
    key = (kind, path.reason)
    if key not in _logged:
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
    where the activation is quantized (NVFP4 on Blackwell, fp8 in the W4A8 path; default: from
    its amax). `activation` ("bf16" or "fp8", default "bf16")
    chooses the sm_89/sm_90 path. Output in x's dtype.
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
    activation is quantized to MXFP8 first (one kernel); the fallback multiplies the
    dequantized weight with the unquantized activation. Output in x's dtype."""
    n = out_features or weight.shape[0]
    weight = weight[:n]
    x2 = _as_matrix(x, weight.shape[1])
    path = mxfp8_linear_path(x)
    _log_once("MXFP8", path)
    if path.name == "fallback":
        w = dequantize_mxfp8(weight, weight_scale, x.dtype, backend="eager")
        out = F.linear(x2, w, bias)
    else:
        # quantize_mxfp8 pads rows to 32 only with pad_32x; K is already a multiple of 32.
        qx, sx = quantize_mxfp8(x2)
        backend = "cuda" if path.name == "native" else "triton"
        out = scaled_mm_mxfp8(qx, weight, sx, weight_scale, bias, x.dtype, backend=backend)
    return out.reshape(*x.shape[:-1], n)
