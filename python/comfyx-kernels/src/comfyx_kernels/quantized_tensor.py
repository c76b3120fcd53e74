"""QuantizedTensor: a torch.Tensor subclass holding fp8 data and a scale.

It looks like a tensor of its original dtype (shape and dtype of the float tensor). Matrix
products of two QuantizedTensors run on fp8 tensor cores via torch._scaled_mm; shape ops keep
the data quantized; any other op dequantizes its QuantizedTensor arguments (warning once per op).
`__tensor_flatten__` / `__tensor_unflatten__` let torch.compile trace through it.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Mapping
from typing import Any

import torch
from torch.utils._pytree import tree_map

from .layouts import TensorCoreFP8Layout, layout_named

logger = logging.getLogger(__name__)
aten = torch.ops.aten

_HANDLERS: dict[Any, Callable] = {}
_warned_fallback: set[str] = set()


def _handles(*ops: Any) -> Callable:
    def decorate(handler: Callable) -> Callable:
        for op in ops:
            _HANDLERS[op] = handler
        return handler

    return decorate


class QuantizedTensor(torch.Tensor):
    _qdata: torch.Tensor
    _scale: torch.Tensor
    _layout_name: str
    _orig_dtype: torch.dtype

    # The layout travels by name: torch.compile can trace a str argument, not a class.
    @staticmethod
    def __new__(
        cls,
        qdata: torch.Tensor,
        scale: torch.Tensor,
        orig_dtype: torch.dtype,
        layout: str = TensorCoreFP8Layout.name,
    ) -> QuantizedTensor:
        return torch.Tensor._make_wrapper_subclass(
            cls,
            qdata.shape,
            strides=qdata.stride(),
            dtype=orig_dtype,
            device=qdata.device,
            requires_grad=False,
        )

    def __init__(
        self,
        qdata: torch.Tensor,
        scale: torch.Tensor,
        orig_dtype: torch.dtype,
        layout: str = TensorCoreFP8Layout.name,
    ):
        if scale.numel() != 1 or scale.dtype != torch.float32:
            raise ValueError(
                "scale must be one float32 element, "
                f"got {scale.dtype} of shape {tuple(scale.shape)}"
            )
        self._qdata = qdata
        self._scale = scale.reshape(())
        self._orig_dtype = orig_dtype
        self._layout_name = layout

    @property
    def _layout(self) -> type[TensorCoreFP8Layout]:
        return layout_named(self._layout_name)

    @classmethod
    def from_float(
        cls,
        tensor: torch.Tensor,
        layout: str | type[TensorCoreFP8Layout] = TensorCoreFP8Layout.name,
        scale: torch.Tensor | float | None = None,
        dtype: torch.dtype = torch.float8_e4m3fn,
    ) -> QuantizedTensor:
        """Quantize `tensor`; scale=None derives it from the tensor's amax on its device.

        `layout` is a layout class or its name (ComfyUI passes "TensorCoreFP8Layout").
        """
        name = layout if isinstance(layout, str) else layout.name
        qdata, scale = layout_named(name).quantize(tensor, scale, dtype)
        return cls(qdata, scale, tensor.dtype, name)

    def dequantize(self) -> torch.Tensor:
        return self._layout.dequantize(self._qdata, self._scale, self._orig_dtype)

    @property
    def qdata(self) -> torch.Tensor:
        return self._qdata

    @property
    def scale(self) -> torch.Tensor:
        return self._scale

    def __repr__(self) -> str:
        return (
            f"QuantizedTensor({self._layout.name}, shape={tuple(self.shape)}, "
            f"qdtype={self._qdata.dtype}, dtype={self._orig_dtype})"
        )

    def __tensor_flatten__(self) -> tuple[list[str], tuple[str, torch.dtype]]:
        return ["_qdata", "_scale"], (self._layout_name, self._orig_dtype)

    @staticmethod
    def __tensor_unflatten__(inner, context, outer_size, outer_stride) -> QuantizedTensor:
        layout_name, orig_dtype = context
        return QuantizedTensor(inner["_qdata"], inner["_scale"], orig_dtype, layout_name)

    @classmethod
    def __torch_dispatch__(cls, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        handler = _HANDLERS.get(func) or _HANDLERS.get(func.overloadpacket)
        if handler is not None:
            return handler(func, args, kwargs)
        return _dequantizing_fallback(func, args, kwargs)

    # Grad-free inference type: no autograd subclass machinery needed for torch_function.
    __torch_function__ = torch._C._disabled_torch_function_impl


def _dequantize_any(value: Any) -> Any:
    return value.dequantize() if isinstance(value, QuantizedTensor) else value


def _dequantizing_fallback(func, args, kwargs, why: str = "has no fp8 implementation"):
    message = f"{func} {why}"
    if message not in _warned_fallback:
        _warned_fallback.add(message)
        logger.warning("QuantizedTensor: %s; dequantizing", message)
    return func(*tree_map(_dequantize_any, args), **tree_map(_dequantize_any, kwargs))


def _rewrap(source: QuantizedTensor, qdata: torch.Tensor) -> QuantizedTensor:
    return QuantizedTensor(qdata, source._scale, source._orig_dtype, source._layout_name)


# ---- shape and bookkeeping ops keep the data quantized (fp8 maps 1:1 to elements) ----


@_handles(
    aten.view.default,
    aten.reshape.default,
    aten._unsafe_view.default,
    aten.t.default,
    aten.transpose.int,
    aten.detach.default,
    aten.alias.default,
)
def _shape_op(func, args, kwargs):
    source = args[0]
    return _rewrap(source, func(source._qdata, *args[1:], **kwargs))


@_handles(aten.clone.default)
def _clone(func, args, kwargs):
    source = args[0]
    return QuantizedTensor(
        func(source._qdata, **kwargs),
        source._scale.clone(),
        source._orig_dtype,
        source._layout_name,
    )


@_handles(aten._to_copy.default)
def _to_copy(func, args, kwargs):
    # .to(device) moves the quantized data; .to(float dtype) changes the dtype it stands for.
    source = args[0]
    dtype = kwargs.pop("dtype", None) or source._orig_dtype
    device = kwargs.get("device")
    qdata = func(source._qdata, **kwargs)
    scale = source._scale.to(device=device) if device is not None else source._scale
    return QuantizedTensor(qdata, scale, dtype, source._layout_name)


@_handles(aten.copy_.default)
def _copy_(func, args, kwargs):
    destination, source = args[0], args[1]
    if not isinstance(destination, QuantizedTensor):
        return destination.copy_(source.dequantize())
    if isinstance(source, QuantizedTensor):
        destination._qdata.copy_(source._qdata)
        destination._scale.copy_(source._scale)
    else:  # keep the destination's scale, as loading a weight into a quantized layer does
        qdata, _ = destination._layout.quantize(
            source.to(destination.device), destination._scale, destination._qdata.dtype
        )
        destination._qdata.copy_(qdata)
    return destination


# ---- matrix products: fp8 tensor cores when both operands are quantized ----


_capabilities: dict[int, tuple[int, int]] = {}  # a dict, not lru_cache: Dynamo traces it


def _capability(device_index: int) -> tuple[int, int]:
    if device_index not in _capabilities:
        _capabilities[device_index] = torch.cuda.get_device_capability(device_index)
    return _capabilities[device_index]


def _scaled_mm_problem(a: torch.Tensor, b: torch.Tensor) -> str | None:
    """Why torch._scaled_mm cannot take fp8 a (M, K) @ b (K, N), or None."""
    if a.device.type != "cuda":
        return f"fp8 matmul needs a CUDA device, operands are on {a.device}"
    capability = _capability(a.device.index or 0)
    if capability < TensorCoreFP8Layout.MIN_CAPABILITY:
        return "fp8 matmul needs sm_89 or newer, device is sm_{}{}".format(*capability)
    if a.shape[1] % 16 or b.shape[1] % 16:
        return f"fp8 matmul needs K and N divisible by 16, got K={a.shape[1]} N={b.shape[1]}"
    if a.dtype == b.dtype == torch.float8_e5m2:
        return "fp8 matmul cannot multiply two e5m2 operands"
    return None


def _fp8_matmul(
    a: torch.Tensor,
    a_scale: torch.Tensor,
    b: torch.Tensor,
    b_scale: torch.Tensor,
    bias: torch.Tensor | None,
    out_dtype: torch.dtype,
    fallback: Callable[[], torch.Tensor],
    fast_accum: bool = False,
) -> torch.Tensor:
    """fp8 a (M, K) @ b (K, N) on tensor cores, or `fallback()` (with a one-time warning)."""
    problem = _scaled_mm_problem(a, b)
    if problem is not None:
        if problem not in _warned_fallback:
            _warned_fallback.add(problem)
            logger.warning("QuantizedTensor: %s; dequantizing", problem)
        return fallback()
    a = a.contiguous()  # cuBLASLt wants A row-major and B column-major
    b = b if b.stride(0) == 1 else b.t().contiguous().t()
    fused_bias = bias is not None and out_dtype != torch.float32  # cuBLASLt: no fp32 bias
    out = torch._scaled_mm(
        a,
        b,
        scale_a=a_scale,
        scale_b=b_scale,
        bias=bias.to(out_dtype) if fused_bias else None,
        out_dtype=out_dtype,
        use_fast_accum=fast_accum,
    )
    return out + bias if bias is not None and not fused_bias else out


_ONE_QUANTIZED = "got one fp8 operand (fp8 matmul needs both; see fp8_linear)"


def _both_quantized(a: Any, b: Any) -> bool:
    return isinstance(a, QuantizedTensor) and isinstance(b, QuantizedTensor)


@_handles(aten.mm.default)
def _mm(func, args, kwargs):
    a, b = args
    if not _both_quantized(a, b):
        return _dequantizing_fallback(func, args, kwargs, _ONE_QUANTIZED)
    fallback = lambda: _dequantizing_fallback(func, args, kwargs)  # noqa: E731
    return _fp8_matmul(a._qdata, a._scale, b._qdata, b._scale, None, a._orig_dtype, fallback)


@_handles(aten.addmm.default)
def _addmm(func, args, kwargs):
    bias, a, b = args[:3]
    plain_add = len(args) == 3 and kwargs.get("beta", 1) == 1 and kwargs.get("alpha", 1) == 1
    if not (_both_quantized(a, b) and plain_add and bias.ndim == 1):
        return _dequantizing_fallback(func, args, kwargs, _ONE_QUANTIZED)
    fallback = lambda: _dequantizing_fallback(func, args, kwargs)  # noqa: E731
    return _fp8_matmul(a._qdata, a._scale, b._qdata, b._scale, bias, a._orig_dtype, fallback)


@_handles(aten.linear.default)
def _linear(func, args, kwargs):
    x, weight = args[0], args[1]
    bias = args[2] if len(args) > 2 else kwargs.get("bias")
    if not _both_quantized(x, weight):
        return _dequantizing_fallback(func, args, kwargs, _ONE_QUANTIZED)
    out = _fp8_matmul(
        x._qdata.reshape(-1, x.shape[-1]),
        x._scale,
        weight._qdata.t(),
        weight._scale,
        bias,
        x._orig_dtype,
        lambda: torch.nn.functional.linear(x.dequantize(), weight.dequantize(), bias),
    )
    return out.reshape(*x.shape[:-1], weight.shape[0])


FAST_ACCUM_ENV = "COMFYX_FP8_FAST_ACCUM"


def fast_accum_setting(environ: Mapping[str, str] = os.environ) -> bool:
    """fp8_linear's default accumulation: COMFYX_FP8_FAST_ACCUM=1 (or unset) fast, =0 exact."""
    value = environ.get(FAST_ACCUM_ENV, "1")
    if value not in ("0", "1"):
        raise ValueError(f"{FAST_ACCUM_ENV} must be 0 or 1, got {value!r}")
    return value == "1"


# Read once, at import: fp8_linear runs per layer per step, and Dynamo traces a constant.
FAST_ACCUM = fast_accum_setting()


def fp8_linear(
    x: torch.Tensor,
    weight: QuantizedTensor,
    bias: torch.Tensor | None = None,
    input_scale: torch.Tensor | None = None,
    fast_accum: bool | None = None,
) -> torch.Tensor:
    """x @ weight.T + bias with x quantized to fp8 first (static `input_scale`, or dynamic).

    The activation path ComfyUI's fp8 layers take: one quantize kernel, one cuBLASLt fp8 GEMM
    (called directly, without the per-op dispatch of F.linear on QuantizedTensors).
    `fast_accum` (default FAST_ACCUM: on unless COMFYX_FP8_FAST_ACCUM=0) lets Hopper's tensor
    cores accumulate without promoting partial sums to float32, as torchao's float8 inference
    does: 2-4% less GPU time on an H100, for 0.02-0.05% more relative output error where
    quantizing the operands to fp8 costs 2.7% (bench/results/kernels.md). Pass False for the
    exact float32 accumulation.
    """
    if not isinstance(weight, QuantizedTensor):
        raise TypeError(f"fp8_linear needs a QuantizedTensor weight, got {type(weight).__name__}")
    return scaled_fp8_linear(x, weight._qdata, weight._scale, bias, input_scale, fast_accum)


def scaled_fp8_linear(
    x: torch.Tensor,
    weight: torch.Tensor,
    weight_scale: torch.Tensor,
    bias: torch.Tensor | None = None,
    input_scale: torch.Tensor | None = None,
    fast_accum: bool | None = None,
) -> torch.Tensor:
    """fp8_linear for a layer that stores its fp8 weight (N, K) and float32 scale as plain tensors.

    This is how ComfyUI's layers hold them (a QuantizedTensor parameter would not survive its
    weight casting and patching). Where the GEMM cannot run on fp8 tensor cores
    (:func:`fp8_linear_problem`), the quantized operands are multiplied dequantized.
    """
    qdata, scale = TensorCoreFP8Layout.quantize(x, input_scale, torch.float8_e4m3fn)
    out = _fp8_matmul(
        qdata.reshape(-1, x.shape[-1]),
        scale,
        weight.t(),
        weight_scale,
        bias,
        x.dtype,
        lambda: torch.nn.functional.linear(
            TensorCoreFP8Layout.dequantize(qdata, scale, x.dtype),
            TensorCoreFP8Layout.dequantize(weight, weight_scale, x.dtype),
            bias,
        ),
        FAST_ACCUM if fast_accum is None else fast_accum,
    )
    return out.reshape(*x.shape[:-1], weight.shape[0])


def fp8_linear_problem(x: torch.Tensor, weight: torch.Tensor) -> str | None:
    """Why x @ weight.T for an fp8 weight (N, K) cannot run on fp8 tensor cores, or None."""
    if x.shape[-1] != weight.shape[-1]:
        return f"input has {x.shape[-1]} features, the weight takes {weight.shape[-1]}"
    # the activation as fp8_linear multiplies it: quantized to e4m3
    activation = x.new_empty((0, x.shape[-1]), dtype=torch.float8_e4m3fn)
    return _scaled_mm_problem(activation, weight.t())
