"""CUDA backend: the nanobind extension `comfyx_kernels._cuda_ext` (built when nvcc is present):
fp8 quantize / dequantize, NVFP4 quantize, RoPE.

Every argument is checked here (Constraints) before its address reaches a kernel; the kernels
handle tails and, for RoPE, any strides.
"""

from __future__ import annotations

import importlib.util

import torch

from ..blockscaled import NVFP4_BLOCK, scale_buffer
from ..constraints import FLOAT_DTYPES, FP8_DTYPES, Constraints, same_device, scalar_tensor
from ..registry import mark_available, mark_unavailable, register
from ..rope_layout import (
    broadcast_freqs,
    four_dims_problem,
    inplace_problem,
    rope_pair_problem,
    trim_freqs,
)
from . import eager_blockscaled as eager

if importlib.util.find_spec("comfyx_kernels._cuda_ext") is None:
    _cuda_ext = None
    _import_error = "extension not built (CPU-only wheel: no CUDA compiler at build time)"
else:
    try:
        from .. import _cuda_ext
    except ImportError as error:  # e.g. a driver too old for the CUDA runtime it was built with
        _cuda_ext = None
        _import_error = f"extension failed to load: {error}"

FLOAT_CODES = {torch.float32: 0, torch.float16: 1, torch.bfloat16: 2}
FP8_CODES = {torch.float8_e4m3fn: 0, torch.float8_e5m2: 1}
DEVICES = frozenset({"cuda"})
F32 = frozenset({torch.float32})
MIN_CAPABILITY = (8, 0)  # the extension is built for sm_80, 89, 90a, 100, 120 (+ PTX)
# Heads each RoPE thread walks when frequencies broadcast over heads (1, 2, 4 or 8); 2 was
# fastest on an H100 for Flux shapes (92% of copy bandwidth, 4: 89%, 8: 87%).
ROPE_HEADS_PER_THREAD = 2

_current_stream = torch._C._cuda_getCurrentRawStream if torch.cuda.is_available() else None
_dynamic_blocks: dict[int, int] = {}


QUANTIZE = Constraints(
    devices=DEVICES,
    dtypes={"x": FLOAT_DTYPES, "scale": F32, "output_type": FP8_DTYPES},
    min_capability=MIN_CAPABILITY,
    rules=(same_device("x", "scale"), scalar_tensor("scale")),
)
DEQUANTIZE = Constraints(
    devices=DEVICES,
    dtypes={"x": FP8_DTYPES, "scale": F32, "output_type": FLOAT_DTYPES},
    min_capability=MIN_CAPABILITY,
    rules=(same_device("x", "scale"), scalar_tensor("scale")),
)
QUANTIZE_DYNAMIC = Constraints(
    devices=DEVICES,
    dtypes={"x": FLOAT_DTYPES, "output_type": FP8_DTYPES},
    min_capability=MIN_CAPABILITY,
)
QUANTIZE_NVFP4 = Constraints(
    devices=DEVICES,
    dtypes=eager.QUANTIZE_NVFP4.dtypes,
    min_capability=MIN_CAPABILITY,
    rules=eager.QUANTIZE_NVFP4.rules,
)
ROPE1 = Constraints(
    devices=DEVICES,
    dtypes={"x": FLOAT_DTYPES, "freqs_cis": F32},
    min_capability=MIN_CAPABILITY,
    rules=(same_device("x", "freqs_cis"), four_dims_problem, rope_pair_problem),
)
ROPE1_INPLACE = Constraints(
    devices=DEVICES,
    dtypes=ROPE1.dtypes,
    min_capability=MIN_CAPABILITY,
    rules=(*ROPE1.rules, inplace_problem),
)
ROPE = Constraints(
    devices=DEVICES,
    dtypes={"xq": FLOAT_DTYPES, "xk": FLOAT_DTYPES, "freqs_cis": F32},
    min_capability=MIN_CAPABILITY,
    rules=(same_device("xq", "xk", "freqs_cis"), four_dims_problem, rope_pair_problem),
)
ROPE_INPLACE = Constraints(
    devices=DEVICES,
    dtypes=ROPE.dtypes,
    min_capability=MIN_CAPABILITY,
    rules=(*ROPE.rules, inplace_problem),
)


def _aligned_contiguous(x: torch.Tensor) -> torch.Tensor:
    # The kernels use 16-byte vector accesses from the first element on.
    x = x.contiguous()
    return x if x.data_ptr() % 16 == 0 else x.clone()


def _stream(device: torch.device) -> int:
    return _current_stream(device.index)


@register("cuda", "quantize_per_tensor_fp8", QUANTIZE)
def quantize_per_tensor_fp8(
    x: torch.Tensor, scale: torch.Tensor, output_type: torch.dtype
) -> torch.Tensor:
    x = _aligned_contiguous(x)
    out = torch.empty(x.shape, dtype=output_type, device=x.device)
    _cuda_ext.quantize_fp8(
        x.data_ptr(),
        scale.data_ptr(),
        out.data_ptr(),
        x.numel(),
        FLOAT_CODES[x.dtype],
        FP8_CODES[output_type],
        _stream(x.device),
    )
    return out


@register("cuda", "dequantize_per_tensor_fp8", DEQUANTIZE)
def dequantize_per_tensor_fp8(
    x: torch.Tensor, scale: torch.Tensor, output_type: torch.dtype
) -> torch.Tensor:
    x = _aligned_contiguous(x)
    out = torch.empty(x.shape, dtype=output_type, device=x.device)
    _cuda_ext.dequantize_fp8(
        x.data_ptr(),
        scale.data_ptr(),
        out.data_ptr(),
        x.numel(),
        FP8_CODES[x.dtype],
        FLOAT_CODES[output_type],
        _stream(x.device),
    )
    return out


@register("cuda", "quantize_fp8_dynamic", QUANTIZE_DYNAMIC)
def quantize_fp8_dynamic(
    x: torch.Tensor, output_type: torch.dtype
) -> tuple[torch.Tensor, torch.Tensor]:
    x = _aligned_contiguous(x)
    device = x.device.index
    if device not in _dynamic_blocks:
        _dynamic_blocks[device] = _cuda_ext.dynamic_quantize_max_blocks(device)
    capacity = _dynamic_blocks[device]
    out = torch.empty(x.shape, dtype=output_type, device=x.device)
    scale = torch.empty((), dtype=torch.float32, device=x.device)
    partials = torch.empty(capacity, dtype=torch.float32, device=x.device)
    _cuda_ext.quantize_fp8_dynamic(
        x.data_ptr(),
        partials.data_ptr(),
        capacity,
        scale.data_ptr(),
        out.data_ptr(),
        x.numel(),
        FLOAT_CODES[x.dtype],
        FP8_CODES[output_type],
        device,
        _stream(x.device),
    )
    return out, scale


@register("cuda", "quantize_nvfp4", QUANTIZE_NVFP4)
def quantize_nvfp4(
    x: torch.Tensor,
    per_tensor_scale: torch.Tensor,
    epsilon: float = 0.0,  # accepted and unused, as in comfy-kitchen
    pad_16x: bool = False,
    hi_first: bool = True,
) -> tuple[torch.Tensor, torch.Tensor]:
    x = _aligned_contiguous(eager.pad_to_blocks(x, NVFP4_BLOCK, pad_16x))
    rows, cols = x.shape
    q = torch.empty((rows, cols // 2), dtype=torch.uint8, device=x.device)
    scales = scale_buffer(rows, cols // NVFP4_BLOCK, torch.float8_e4m3fn, x.device)
    _cuda_ext.quantize_nvfp4(
        x.data_ptr(),
        per_tensor_scale.data_ptr(),
        q.data_ptr(),
        scales.data_ptr(),
        rows,
        cols,
        scales.shape[1],
        FLOAT_CODES[x.dtype],
        hi_first,
        _stream(x.device),
    )
    return q, scales


def _rope_description(x: torch.Tensor, out: torch.Tensor, freqs: torch.Tensor) -> list[int]:
    """x seen as (batch, seq, heads, dim): heads is the axis the frequencies broadcast over."""
    f_strides = [
        0 if size == 1 else stride
        for size, stride in zip(x.shape[:3], freqs.stride()[:3], strict=True)
    ]
    heads, seq = (2, 1) if f_strides[2] == 0 and f_strides[1] != 0 else (1, 2)
    xs, os = x.stride(), out.stride()
    return [
        x.data_ptr(),
        out.data_ptr(),
        x.shape[0],
        x.shape[seq],
        x.shape[heads],
        xs[0],
        xs[seq],
        xs[heads],
        xs[3],
        os[0],
        os[seq],
        os[heads],
        os[3],
        f_strides[0],
        f_strides[seq],
        f_strides[heads],
    ]


def _vectorizable(t: torch.Tensor) -> bool:
    # 8 elements per thread with 16-byte accesses: unit dim stride, rows on 16-byte bounds.
    return (
        t.shape[3] % 8 == 0
        and t.stride(3) == 1
        and all(s % 8 == 0 for s in t.stride()[:3])
        and t.data_ptr() % 16 == 0
    )


def _rope(pairs: list[tuple[torch.Tensor, torch.Tensor]], freqs_cis: torch.Tensor) -> None:
    x0 = pairs[0][0]
    freqs = trim_freqs(x0, freqs_cis).contiguous()
    if freqs.data_ptr() % 16:
        freqs = freqs.clone()
    descriptions = [_rope_description(x, out, broadcast_freqs(x, freqs)) for x, out in pairs]
    vectorized = all(_vectorizable(x) and _vectorizable(out) for x, out in pairs)
    _cuda_ext.rope(
        descriptions,
        freqs.data_ptr(),
        x0.shape[3],
        FLOAT_CODES[x0.dtype],
        vectorized,
        ROPE_HEADS_PER_THREAD,
        _stream(x0.device),
    )


def _same_dtype(xq: torch.Tensor, xk: torch.Tensor) -> bool:
    return xq.dtype == xk.dtype and xq.shape[3] == xk.shape[3]


@register("cuda", "apply_rope1", ROPE1)
def apply_rope1(x: torch.Tensor, freqs_cis: torch.Tensor) -> torch.Tensor:
    out = torch.empty_like(x)
    _rope([(x, out)], freqs_cis)
    return out


@register("cuda", "apply_rope1_", ROPE1_INPLACE)
def apply_rope1_(x: torch.Tensor, freqs_cis: torch.Tensor) -> None:
    _rope([(x, x)], freqs_cis)


@register("cuda", "apply_rope", ROPE)
def apply_rope(
    xq: torch.Tensor, xk: torch.Tensor, freqs_cis: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    q, k = torch.empty_like(xq), torch.empty_like(xk)
    if _same_dtype(xq, xk):  # one launch for both
        _rope([(xq, q), (xk, k)], freqs_cis)
    else:
        _rope([(xq, q)], freqs_cis)
        _rope([(xk, k)], freqs_cis)
    return q, k


@register("cuda", "apply_rope_", ROPE_INPLACE)
def apply_rope_(xq: torch.Tensor, xk: torch.Tensor, freqs_cis: torch.Tensor) -> None:
    if _same_dtype(xq, xk):
        _rope([(xq, xq), (xk, xk)], freqs_cis)
    else:
        _rope([(xq, xq)], freqs_cis)
        _rope([(xk, xk)], freqs_cis)


if _cuda_ext is None:
    mark_unavailable("cuda", _import_error)
elif not torch.cuda.is_available():
    mark_unavailable("cuda", "no CUDA GPU visible to torch")
else:
    mark_available("cuda")
