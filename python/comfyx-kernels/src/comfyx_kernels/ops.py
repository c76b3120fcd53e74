"""Public ops, named and shaped like comfy-kitchen's so callers can switch by changing an import.

Plain tensors go straight to the registry (lowest per-call overhead). While compiling, or
for tensor subclasses (FakeTensor during tracing, Parameter), they go through opaque
`torch.ops.comfyx_kernels.*` custom ops, so tracing never reaches a backend (a nanobind call
needs real memory) and the graph keeps one node per op.

Every op takes comfy-kitchen's keyword `backend="cuda" | "triton" | "eager"`: run on that
backend only (NoCapableBackendError with its reason if it cannot take the call), like
`use_backend` for one call. The custom ops carry it as a string, "" for automatic.
"""

from __future__ import annotations

import torch

from .registry import dispatch

_DEFAULT_FP8 = torch.float8_e4m3fn


def _traced(x: torch.Tensor) -> bool:
    return type(x) is not torch.Tensor or torch.compiler.is_compiling()


@torch.library.custom_op("comfyx_kernels::quantize_per_tensor_fp8", mutates_args=())
def _quantize_op(
    x: torch.Tensor, scale: torch.Tensor, output_type: torch.dtype, backend: str
) -> torch.Tensor:
    return dispatch(
        "quantize_per_tensor_fp8", backend or None, x=x, scale=scale, output_type=output_type
    )


@_quantize_op.register_fake
def _(x: torch.Tensor, scale: torch.Tensor, output_type: torch.dtype, backend: str) -> torch.Tensor:
    return x.new_empty(x.shape, dtype=output_type)


@torch.library.custom_op("comfyx_kernels::dequantize_per_tensor_fp8", mutates_args=())
def _dequantize_op(
    x: torch.Tensor, scale: torch.Tensor, output_type: torch.dtype, backend: str
) -> torch.Tensor:
    return dispatch(
        "dequantize_per_tensor_fp8", backend or None, x=x, scale=scale, output_type=output_type
    )


@_dequantize_op.register_fake
def _(x: torch.Tensor, scale: torch.Tensor, output_type: torch.dtype, backend: str) -> torch.Tensor:
    return x.new_empty(x.shape, dtype=output_type)


@torch.library.custom_op("comfyx_kernels::quantize_fp8_dynamic", mutates_args=())
def _quantize_dynamic_op(
    x: torch.Tensor, output_type: torch.dtype, backend: str
) -> tuple[torch.Tensor, torch.Tensor]:
    return dispatch("quantize_fp8_dynamic", backend or None, x=x, output_type=output_type)


@_quantize_dynamic_op.register_fake
def _(x: torch.Tensor, output_type: torch.dtype, backend: str) -> tuple[torch.Tensor, torch.Tensor]:
    return x.new_empty(x.shape, dtype=output_type), x.new_empty((), dtype=torch.float32)


@torch.library.custom_op("comfyx_kernels::apply_rope1", mutates_args=())
def _rope1_op(x: torch.Tensor, freqs_cis: torch.Tensor, backend: str) -> torch.Tensor:
    return dispatch("apply_rope1", backend or None, x=x, freqs_cis=freqs_cis)


@_rope1_op.register_fake
def _(x: torch.Tensor, freqs_cis: torch.Tensor, backend: str) -> torch.Tensor:
    return torch.empty_like(x)


@torch.library.custom_op("comfyx_kernels::apply_rope1_", mutates_args=("x",))
def _rope1_inplace_op(x: torch.Tensor, freqs_cis: torch.Tensor, backend: str) -> None:
    dispatch("apply_rope1_", backend or None, x=x, freqs_cis=freqs_cis)


@_rope1_inplace_op.register_fake
def _(x: torch.Tensor, freqs_cis: torch.Tensor, backend: str) -> None:
    return None


def quantize_per_tensor_fp8(
    x: torch.Tensor,
    scale: torch.Tensor,
    output_type: torch.dtype = _DEFAULT_FP8,
    *,
    backend: str | None = None,
) -> torch.Tensor:
    """q = saturate(x / scale) rounded to nearest even, in `output_type` (e4m3fn or e5m2).

    `scale` is the float32 dequantization scale (one element, on x's device).
    """
    if _traced(x):
        return _quantize_op(x, scale, output_type, backend or "")
    return dispatch("quantize_per_tensor_fp8", backend, x=x, scale=scale, output_type=output_type)


def dequantize_per_tensor_fp8(
    x: torch.Tensor,
    scale: torch.Tensor,
    output_type: torch.dtype = torch.bfloat16,
    *,
    backend: str | None = None,
) -> torch.Tensor:
    """x * scale in `output_type` (float32, float16 or bfloat16)."""
    if _traced(x):
        return _dequantize_op(x, scale, output_type, backend or "")
    return dispatch("dequantize_per_tensor_fp8", backend, x=x, scale=scale, output_type=output_type)


def quantize_fp8_dynamic(
    x: torch.Tensor, output_type: torch.dtype = _DEFAULT_FP8, *, backend: str | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """Quantize with scale = amax(|x|) / fp8 max, computed on the device: returns (q, scale)."""
    if _traced(x):
        return _quantize_dynamic_op(x, output_type, backend or "")
    return dispatch("quantize_fp8_dynamic", backend, x=x, output_type=output_type)


def apply_rope1(
    x: torch.Tensor, freqs_cis: torch.Tensor, *, backend: str | None = None
) -> torch.Tensor:
    """Interleaved RoPE on one tensor (pairs [2k, 2k+1]); freqs_cis is (..., D/2, 2, 2)."""
    if _traced(x):
        return _rope1_op(x, freqs_cis, backend or "")
    return dispatch("apply_rope1", backend, x=x, freqs_cis=freqs_cis)


def apply_rope1_(
    x: torch.Tensor, freqs_cis: torch.Tensor, *, backend: str | None = None
) -> torch.Tensor:
    """apply_rope1 written into x (inference only); returns x."""
    if _traced(x):
        _rope1_inplace_op(x, freqs_cis, backend or "")
    else:
        dispatch("apply_rope1_", backend, x=x, freqs_cis=freqs_cis)
    return x


def apply_rope(
    xq: torch.Tensor, xk: torch.Tensor, freqs_cis: torch.Tensor, *, backend: str | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """RoPE on queries and keys in one call; they may have different head counts."""
    if _traced(xq):
        return _rope1_op(xq, freqs_cis, backend or ""), _rope1_op(xk, freqs_cis, backend or "")
    return dispatch("apply_rope", backend, xq=xq, xk=xk, freqs_cis=freqs_cis)


def apply_rope_(
    xq: torch.Tensor, xk: torch.Tensor, freqs_cis: torch.Tensor, *, backend: str | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """apply_rope written into xq and xk (inference only); returns (xq, xk)."""
    if _traced(xq):
        _rope1_inplace_op(xq, freqs_cis, backend or "")
        _rope1_inplace_op(xk, freqs_cis, backend or "")
    else:
        dispatch("apply_rope_", backend, xq=xq, xk=xk, freqs_cis=freqs_cis)
    return xq, xk
