"""Triton backend: GPUs of sm_80 and newer (fp8 ops need sm_89), or the CPU under
TRITON_INTERPRET=1 (how CI tests these kernels without a GPU)."""

from __future__ import annotations

import torch
import triton

from ..constraints import FLOAT_DTYPES, FP8_DTYPES, Constraints, same_device, scalar_tensor
from ..fp8 import FP8_MAX, MIN_DYNAMIC_SCALE
from ..registry import mark_available, mark_unavailable, register
from ..rope_layout import broadcast_freqs, four_dims_problem, inplace_problem, rope_pair_problem
from . import triton_kernels as kernels
from .triton_kernels import INTERPRETING

if INTERPRETING:
    from .triton_interpreter_fix import install as _fix_interpreter_rounding

    _fix_interpreter_rounding()

DEVICES = frozenset({"cpu"}) if INTERPRETING else frozenset({"cuda"})
F32 = frozenset({torch.float32})
FP8_CAPABILITY = (8, 9)  # Triton converts to fp8 in hardware from Ada on


QUANTIZE = Constraints(
    devices=DEVICES,
    dtypes={"x": FLOAT_DTYPES, "scale": F32, "output_type": FP8_DTYPES},
    min_capability=FP8_CAPABILITY,
    rules=(same_device("x", "scale"), scalar_tensor("scale")),
)
DEQUANTIZE = Constraints(
    devices=DEVICES,
    dtypes={"x": FP8_DTYPES, "scale": F32, "output_type": FLOAT_DTYPES},
    min_capability=FP8_CAPABILITY,
    rules=(same_device("x", "scale"), scalar_tensor("scale")),
)
QUANTIZE_DYNAMIC = Constraints(
    devices=DEVICES,
    dtypes={"x": FLOAT_DTYPES, "output_type": FP8_DTYPES},
    min_capability=FP8_CAPABILITY,
)
ROPE1 = Constraints(
    devices=DEVICES,
    dtypes={"x": FLOAT_DTYPES, "freqs_cis": FLOAT_DTYPES},
    min_capability=(8, 0),
    rules=(same_device("x", "freqs_cis"), four_dims_problem, rope_pair_problem),
)
ROPE1_INPLACE = Constraints(
    devices=DEVICES,
    dtypes=ROPE1.dtypes,
    min_capability=(8, 0),
    rules=(*ROPE1.rules, inplace_problem),
)
ROPE = Constraints(
    devices=DEVICES,
    dtypes={"xq": FLOAT_DTYPES, "xk": FLOAT_DTYPES, "freqs_cis": FLOAT_DTYPES},
    min_capability=(8, 0),
    rules=(same_device("xq", "xk", "freqs_cis"), four_dims_problem, rope_pair_problem),
)
ROPE_INPLACE = Constraints(
    devices=DEVICES,
    dtypes=ROPE.dtypes,
    min_capability=(8, 0),
    rules=(*ROPE.rules, inplace_problem),
)


def _flat_grid(n: int):
    return lambda meta: (triton.cdiv(n, meta["BLOCK"]),)


def _size_class(n: int) -> int:
    # Autotune once per power-of-two size bucket instead of once per exact size.
    return n.bit_length()


@register("triton", "quantize_per_tensor_fp8", QUANTIZE)
def quantize_per_tensor_fp8(
    x: torch.Tensor, scale: torch.Tensor, output_type: torch.dtype
) -> torch.Tensor:
    x = x.contiguous()
    out = torch.empty(x.shape, dtype=output_type, device=x.device)
    n = x.numel()
    if n:
        kernels.quantize_kernel[_flat_grid(n)](
            x, scale, out, n, _size_class(n), FP8_MAX=FP8_MAX[output_type]
        )
    return out


@register("triton", "dequantize_per_tensor_fp8", DEQUANTIZE)
def dequantize_per_tensor_fp8(
    x: torch.Tensor, scale: torch.Tensor, output_type: torch.dtype
) -> torch.Tensor:
    x = x.contiguous()
    out = torch.empty(x.shape, dtype=output_type, device=x.device)
    n = x.numel()
    if n:
        kernels.dequantize_kernel[_flat_grid(n)](x, scale, out, n, _size_class(n))
    return out


@register("triton", "quantize_fp8_dynamic", QUANTIZE_DYNAMIC)
def quantize_fp8_dynamic(
    x: torch.Tensor, output_type: torch.dtype
) -> tuple[torch.Tensor, torch.Tensor]:
    x = x.contiguous()
    n = x.numel()
    out = torch.empty(x.shape, dtype=output_type, device=x.device)
    amax = torch.zeros((), dtype=torch.float32, device=x.device)
    scale = torch.full((), MIN_DYNAMIC_SCALE, dtype=torch.float32, device=x.device)
    if n:
        kernels.amax_kernel[_flat_grid(n)](x, amax, n, _size_class(n))
        kernels.quantize_from_amax_kernel[_flat_grid(n)](
            x,
            amax,
            scale,
            out,
            n,
            _size_class(n),
            FP8_MAX=FP8_MAX[output_type],
            MIN_SCALE=MIN_DYNAMIC_SCALE,
        )
    return out, scale


def _rope_into(x: torch.Tensor, freqs_cis: torch.Tensor, out: torch.Tensor) -> None:
    freqs = broadcast_freqs(x, freqs_cis)
    rows = x.shape[0] * x.shape[1] * x.shape[2]
    half_dim = x.shape[3] // 2
    if rows == 0 or half_dim == 0:
        return
    grid = lambda meta: (triton.cdiv(rows, meta["BLOCK_ROWS"]),)  # noqa: E731
    kernels.rope_kernel[grid](
        x,
        out,
        freqs,
        rows,
        x.shape[1],
        x.shape[2],
        half_dim,
        _size_class(rows * half_dim),
        *x.stride(),
        *out.stride(),
        *freqs.stride(),
        half_dim_pow2=triton.next_power_of_2(half_dim),
    )


@register("triton", "apply_rope1", ROPE1)
def apply_rope1(x: torch.Tensor, freqs_cis: torch.Tensor) -> torch.Tensor:
    out = torch.empty_like(x)
    _rope_into(x, freqs_cis, out)
    return out


@register("triton", "apply_rope1_", ROPE1_INPLACE)
def apply_rope1_(x: torch.Tensor, freqs_cis: torch.Tensor) -> None:
    _rope_into(x, freqs_cis, x)


@register("triton", "apply_rope", ROPE)
def apply_rope(
    xq: torch.Tensor, xk: torch.Tensor, freqs_cis: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    return apply_rope1(xq, freqs_cis), apply_rope1(xk, freqs_cis)


@register("triton", "apply_rope_", ROPE_INPLACE)
def apply_rope_(xq: torch.Tensor, xk: torch.Tensor, freqs_cis: torch.Tensor) -> None:
    _rope_into(xq, freqs_cis, xq)
    _rope_into(xk, freqs_cis, xk)


if INTERPRETING or torch.cuda.is_available():
    mark_available("triton")
else:
    mark_unavailable("triton", "no CUDA GPU (set TRITON_INTERPRET=1 to run on the CPU)")
