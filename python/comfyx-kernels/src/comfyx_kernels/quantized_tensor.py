"""QuantizedTensor: a torch.Tensor subclass holding quantized data and its scales, in one of
the layouts of layouts.py (FP8, NVFP4, MXFP8).

It looks like a tensor of its original dtype (shape and dtype of the float tensor). FP8: matrix
products of two QuantizedTensors run on fp8 tensor cores via torch._scaled_mm, shape ops keep
the data quantized. NVFP4 / MXFP8 weights: F.linear (and mm / addmm with w.t(), as a decomposed
linear gives) run blockscaled_linear's fastest path for the device; transposes are tracked as a
flag. Any other op dequantizes its QuantizedTensor arguments (warning once per op).
`__tensor_flatten__` / `__tensor_unflatten__` let torch.compile trace through it.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import torch
from torch.utils._pytree import tree_map

from .blockscaled_linear import mxfp8_linear, nvfp4_linear
from .constraints import device_capability
from .fp8 import FP8_MAX, dynamic_scale
from .layouts import (
    Layout,
    Params,
    Parts,
    TensorCoreFP8Layout,
    TensorCoreNVFP4Layout,
    layout_named,
)

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


def _contiguous_strides(shape: tuple[int, ...]) -> tuple[int, ...]:
    strides, step = [], 1
    for size in reversed(shape):
        strides.append(step)
        step *= max(size, 1)
    return tuple(reversed(strides))


def _fields(qdata, scale, orig_dtype, layout, block_scale, orig_shape, transposed) -> tuple:
    """Constructor arguments in either form → (layout name, Parts, orig dtype, orig shape,
    transposed). comfy-kitchen's form is QuantizedTensor(qdata, "LayoutName", params)."""
    if isinstance(scale, str):
        layout, params = scale, orig_dtype
        parts = layout_named(layout).parts_from_params(qdata, params)
        return layout, parts, params.orig_dtype, tuple(params.orig_shape), params.transposed
    layout_class = layout_named(layout)
    if scale is not None:
        scale = scale.reshape(()) if scale.numel() == 1 else scale
    parts = Parts(qdata, scale, block_scale)
    layout_class.check(parts)
    # FP8 data maps 1:1 to elements, so its shape is the data's; blocked data may be padded.
    given = orig_shape is not None and layout_class.blocked
    shape = tuple(orig_shape) if given else layout_class.logical_shape(qdata)
    return layout, parts, orig_dtype, shape, transposed


class QuantizedTensor(torch.Tensor):
    """Quantized data and its scales, looking like a tensor of its original dtype and shape.

    `QuantizedTensor(qdata, scale, orig_dtype, layout, block_scale=None, orig_shape=None,
    transposed=False)`, or comfy-kitchen's `QuantizedTensor(qdata, "LayoutName", params)`.
    NVFP4 / MXFP8 data is padded to whole blocks: `orig_shape` is the (unpadded) logical shape,
    and `transposed` marks a logical transpose (w.t() for mm), as in comfy-kitchen.
    """

    _qdata: torch.Tensor
    _scale: torch.Tensor | None
    _block_scale: torch.Tensor | None
    _layout_name: str
    _orig_dtype: torch.dtype
    _orig_shape: tuple[int, ...]
    _transposed: bool

    # The layout travels by name: torch.compile can trace a str argument, not a class.
    @staticmethod
    def __new__(
        cls,
        qdata: torch.Tensor,
        scale: torch.Tensor | str | None,
        orig_dtype: Any = None,
        layout: str = TensorCoreFP8Layout.name,
        block_scale: torch.Tensor | None = None,
        orig_shape: tuple[int, ...] | None = None,
        transposed: bool = False,
    ) -> QuantizedTensor:
        fields = _fields(qdata, scale, orig_dtype, layout, block_scale, orig_shape, transposed)
        layout, _, orig_dtype, shape, transposed = fields
        if transposed:
            shape = shape[::-1]
        blocked = layout_named(layout).blocked
        return torch.Tensor._make_wrapper_subclass(
            cls,
            shape,
            strides=_contiguous_strides(shape) if blocked else qdata.stride(),
            dtype=orig_dtype,
            device=qdata.device,
            requires_grad=False,
        )

    def __init__(
        self,
        qdata: torch.Tensor,
        scale: torch.Tensor | str | None,
        orig_dtype: Any = None,
        layout: str = TensorCoreFP8Layout.name,
        block_scale: torch.Tensor | None = None,
        orig_shape: tuple[int, ...] | None = None,
        transposed: bool = False,
    ):
        fields = _fields(qdata, scale, orig_dtype, layout, block_scale, orig_shape, transposed)
        self._layout_name, parts, self._orig_dtype, self._orig_shape, self._transposed = fields
        self._qdata, self._scale, self._block_scale = parts.qdata, parts.scale, parts.block_scale

    @property
    def _layout(self) -> Layout:
        return layout_named(self._layout_name)

    @classmethod
    def from_float(
        cls,
        tensor: torch.Tensor,
        layout: str | Layout = TensorCoreFP8Layout.name,
        scale: torch.Tensor | float | None = None,
        dtype: torch.dtype = torch.float8_e4m3fn,
    ) -> QuantizedTensor:
        """Quantize `tensor`; scale=None derives it from the tensor on its device.

        `layout` is a layout class or its name (ComfyUI passes "TensorCoreFP8Layout",
        "TensorCoreNVFP4Layout" or "TensorCoreMXFP8Layout"); `dtype` is the FP8 layout's.
        """
        name = layout if isinstance(layout, str) else layout.name
        parts = layout_named(name).make(tensor, scale, dtype)
        return cls(parts.qdata, parts.scale, tensor.dtype, name, parts.block_scale, tensor.shape)

    def _with(self, **changes: Any) -> QuantizedTensor:
        fields = {
            "qdata": self._qdata,
            "scale": self._scale,
            "orig_dtype": self._orig_dtype,
            "layout": self._layout_name,
            "block_scale": self._block_scale,
            "orig_shape": self._orig_shape,
            "transposed": self._transposed,
        }
        return QuantizedTensor(**{**fields, **changes})

    def dequantize(self) -> torch.Tensor:
        full = self._layout.restore(self)
        return full.t() if self._transposed else full

    @property
    def qdata(self) -> torch.Tensor:
        return self._qdata

    @property
    def scale(self) -> torch.Tensor | None:
        """The float32 per-tensor scale (None for MXFP8, which has block scales only)."""
        return self._scale

    @property
    def block_scale(self) -> torch.Tensor | None:
        """The swizzled block scales of NVFP4 / MXFP8 (None for FP8)."""
        return self._block_scale

    @property
    def layout_cls(self) -> Layout:
        return self._layout

    @property
    def _layout_cls(self) -> str:
        """The layout's name, as comfy-kitchen's QuantizedTensor keeps it."""
        return self._layout_name

    @property
    def storage_shape(self) -> tuple[int, ...]:
        return tuple(self._qdata.shape)

    @property
    def params(self) -> Params:
        """comfy-kitchen's layout parameters."""
        return Params(
            self._layout.params_scale(self),
            self._orig_dtype,
            self._orig_shape,
            self._block_scale if self._scale is not None else None,
            self._transposed,
        )

    _params = params

    def state_dict(self, prefix: str = "") -> dict[str, torch.Tensor]:
        """comfy-kitchen's serialization: {prefix + suffix: tensor} (see layouts.py)."""
        tensors = self._layout.state_dict_tensors(self)
        return {f"{prefix}{suffix}": tensor for suffix, tensor in tensors.items()}

    def __repr__(self) -> str:
        return (
            f"QuantizedTensor({self._layout.name}, shape={tuple(self.shape)}, "
            f"qdtype={self._qdata.dtype}, dtype={self._orig_dtype})"
        )

    _INNER = ("_qdata", "_scale", "_block_scale")

    def __tensor_flatten__(self) -> tuple[list[str], tuple]:
        inner = [name for name in self._INNER if getattr(self, name) is not None]
        context = (self._layout_name, self._orig_dtype, self._orig_shape, self._transposed)
        return inner, context

    @staticmethod
    def __tensor_unflatten__(inner, context, outer_size, outer_stride) -> QuantizedTensor:
        layout_name, orig_dtype, orig_shape, transposed = context
        return QuantizedTensor(
            inner["_qdata"],
            inner.get("_scale"),
            orig_dtype,
            layout_name,
            inner.get("_block_scale"),
            orig_shape,
            transposed,
        )

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


def _scales(source: QuantizedTensor, function: Callable) -> dict[str, torch.Tensor | None]:
    """source's scales with `function` applied, as _with() keywords."""
    scale, block = source._scale, source._block_scale
    return {
        "scale": None if scale is None else function(scale),
        "block_scale": None if block is None else function(block),
    }


# ---- shape and bookkeeping ops keep the data quantized ----


_SHAPE_OPS = (
    aten.view.default,
    aten.reshape.default,
    aten._unsafe_view.default,
    aten.t.default,
    aten.transpose.int,
)


@_handles(*_SHAPE_OPS, aten.detach.default, aten.alias.default)
def _shape_op(func, args, kwargs):
    source = args[0]
    if not source._layout.blocked:  # fp8 maps 1:1 to elements
        return source._with(qdata=func(source._qdata, *args[1:], **kwargs))
    return _blocked_shape_op(func, args, kwargs)


def _blocked_shape_op(func, args, kwargs):
    # Packed data and block scales follow the stored rows: a transpose is a flag (as in
    # comfy-kitchen, so mm(x, w.t()) from a decomposed linear stays quantized), a view to the
    # same shape is the tensor itself, anything else dequantizes.
    source = args[0]
    if func in (aten.detach.default, aten.alias.default):
        return source._with()
    swaps = func is aten.t.default or (func is aten.transpose.int and args[1] % 2 != args[2] % 2)
    if swaps and source.dim() == 2:
        return source._with(transposed=not source._transposed)
    same_shape = [list(source.shape), [-1, source.shape[-1]]]
    if func in (aten.view.default, aten.reshape.default) and list(args[1]) in same_shape:
        return source._with()
    return _dequantizing_fallback(func, args, kwargs, f"has no {source._layout.name} form")


@_handles(aten.clone.default)
def _clone(func, args, kwargs):
    source = args[0]
    return source._with(qdata=func(source._qdata, **kwargs), **_scales(source, torch.clone))


@_handles(aten._to_copy.default)
def _to_copy(func, args, kwargs):
    # .to(device) moves the quantized data; .to(float dtype) changes the dtype it stands for.
    source = args[0]
    dtype = kwargs.pop("dtype", None) or source._orig_dtype
    device = kwargs.get("device")
    scales = _scales(source, lambda t: t.to(device=device) if device is not None else t)
    return source._with(qdata=func(source._qdata, **kwargs), orig_dtype=dtype, **scales)


@_handles(aten.copy_.default)
def _copy_(func, args, kwargs):
    destination, source = args[0], args[1]
    if not isinstance(destination, QuantizedTensor):
        return destination.copy_(source.dequantize())
    if not isinstance(source, QuantizedTensor):
        # Keep the destination's per-tensor scale, as loading a weight into a quantized layer
        # does (MXFP8 has block scales only, which come from the data).
        layout = destination._layout
        scale = None if layout.blocked and destination._scale is None else destination._scale
        source = QuantizedTensor.from_float(
            source.to(destination.device), layout.name, scale, destination._qdata.dtype
        )
    elif source._layout_name != destination._layout_name:
        raise TypeError(f"cannot copy {source._layout_name} into {destination._layout_name}")
    for name in QuantizedTensor._INNER:
        target, value = getattr(destination, name), getattr(source, name)
        if target is not None:
            target.copy_(value)
    return destination


# ---- matrix products: fp8 tensor cores when both operands are quantized ----


def _scaled_mm_problem(a: torch.Tensor, b: torch.Tensor) -> str | None:
    """Why torch._scaled_mm cannot take fp8 a (M, K) @ b (K, N), or None."""
    problem = _gemm_problem(a.device, a.shape[1], b.shape[1])
    if problem is None and a.dtype == b.dtype == torch.float8_e5m2:
        return "fp8 matmul cannot multiply two e5m2 operands"
    return problem


def _gemm_problem(device: torch.device, k: int, n: int) -> str | None:
    # Tensor metadata only, so that it traces under torch.compile without allocating or guarding
    # on anything but the device and the (static) weight shape.
    if device.type != "cuda":
        return f"fp8 matmul needs a CUDA device, operands are on {device}"
    capability = device_capability(device.index or 0)
    if capability < TensorCoreFP8Layout.MIN_CAPABILITY:
        return "fp8 matmul needs sm_89 or newer, device is sm_{}{}".format(*capability)
    if k % 16 or n % 16:
        return f"fp8 matmul needs K and N divisible by 16, got K={k} N={n}"
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
        # not while dynamo traces: it cannot trace a logging call (torch 2.14 refuses it under
        # fullgraph); the eager call and comfyx's layers (fp8_linear_problem) say it instead
        if problem not in _warned_fallback and not torch.compiler.is_compiling():
            _warned_fallback.add(problem)
            logger.warning("QuantizedTensor: %s; dequantizing", problem)
        return fallback()
    return _scaled_mm(a, a_scale, b, b_scale, bias, out_dtype, fast_accum)


def _scaled_mm(
    a: torch.Tensor,
    a_scale: torch.Tensor,
    b: torch.Tensor,
    b_scale: torch.Tensor,
    bias: torch.Tensor | None,
    out_dtype: torch.dtype,
    fast_accum: bool,
) -> torch.Tensor:
    """torch._scaled_mm of operands it takes (_scaled_mm_problem is None). Each operation here is
    traced once per layer: none is made where it would change nothing."""
    if not a.is_contiguous():  # cuBLASLt wants A row-major and B column-major
        a = a.contiguous()
    if b.stride(0) != 1:
        b = b.t().contiguous().t()
    fused_bias = bias is not None and out_dtype != torch.float32  # cuBLASLt: no fp32 bias
    if fused_bias and bias.dtype != out_dtype:
        bias = bias.to(out_dtype)
    out = torch._scaled_mm(
        a,
        b,
        scale_a=a_scale,
        scale_b=b_scale,
        bias=bias if fused_bias else None,
        out_dtype=out_dtype,
        use_fast_accum=fast_accum,
    )
    return out + bias if bias is not None and not fused_bias else out


_ONE_QUANTIZED = "got one fp8 operand (fp8 matmul needs both; see fp8_linear)"


def _blocked(value: Any) -> bool:
    return isinstance(value, QuantizedTensor) and value._layout.blocked


def _both_quantized(a: Any, b: Any) -> bool:
    """Both FP8 QuantizedTensors (the _scaled_mm path)."""
    fp8 = [isinstance(v, QuantizedTensor) and not v._layout.blocked for v in (a, b)]
    return all(fp8)


def _block_linear(x: torch.Tensor, weight: QuantizedTensor, bias: torch.Tensor | None):
    """x @ weight.T + bias for an NVFP4 / MXFP8 weight: blockscaled_linear's fastest path."""
    x = x.dequantize() if isinstance(x, QuantizedTensor) else x
    n = weight._orig_shape[0]
    if weight._layout is TensorCoreNVFP4Layout:
        return nvfp4_linear(
            x, weight._qdata, weight._block_scale, weight._scale, bias, out_features=n
        )
    return mxfp8_linear(x, weight._qdata, weight._block_scale, bias, out_features=n)


def _weight_of_mm(b: Any) -> QuantizedTensor | None:
    """The weight W when b is W.t() of an NVFP4 / MXFP8 weight (a decomposed linear)."""
    return b._with(transposed=False) if _blocked(b) and b._transposed else None


@_handles(aten.mm.default)
def _mm(func, args, kwargs):
    a, b = args
    weight = _weight_of_mm(b)
    if weight is not None and not _blocked(a):
        return _block_linear(a, weight, None)
    if not _both_quantized(a, b):
        return _dequantizing_fallback(func, args, kwargs, _ONE_QUANTIZED)
    fallback = lambda: _dequantizing_fallback(func, args, kwargs)  # noqa: E731
    return _fp8_matmul(a._qdata, a._scale, b._qdata, b._scale, None, a._orig_dtype, fallback)


@_handles(aten.addmm.default)
def _addmm(func, args, kwargs):
    bias, a, b = args[:3]
    plain_add = len(args) == 3 and kwargs.get("beta", 1) == 1 and kwargs.get("alpha", 1) == 1
    weight = _weight_of_mm(b)
    if weight is not None and not _blocked(a) and plain_add and bias.ndim == 1:
        return _block_linear(a, weight, bias)
    if not (_both_quantized(a, b) and plain_add and bias.ndim == 1):
        return _dequantizing_fallback(func, args, kwargs, _ONE_QUANTIZED)
    fallback = lambda: _dequantizing_fallback(func, args, kwargs)  # noqa: E731
    return _fp8_matmul(a._qdata, a._scale, b._qdata, b._scale, bias, a._orig_dtype, fallback)


@_handles(aten.linear.default)
def _linear(func, args, kwargs):
    x, weight = args[0], args[1]
    bias = args[2] if len(args) > 2 else kwargs.get("bias")
    if _blocked(weight) and not weight._transposed and not _blocked(x):
        return _block_linear(x, weight, bias)
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


# fp8_linear's default accumulation. A constant, not read from the environment: a caller that wants
# the other passes fast_accum (comfyx passes its --fp8-fast-accum setting); Dynamo traces either.
FAST_ACCUM = True


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
    `fast_accum` (default FAST_ACCUM: on) lets Hopper's tensor
    cores accumulate without promoting partial sums to float32, as torchao's float8 inference
    does: 2-4% less GPU time on an H100, for 0.02-0.05% more relative output error where
    quantizing the operands to fp8 costs 2.7% (bench/results/kernels.md). Pass False for the
    exact float32 accumulation.
    """
    if not isinstance(weight, QuantizedTensor):
        raise TypeError(f"fp8_linear needs a QuantizedTensor weight, got {type(weight).__name__}")
    if weight._layout.blocked:
        raise TypeError(
            f"fp8_linear takes TensorCoreFP8Layout weights, got {weight._layout.name} "
            "(F.linear, or nvfp4_linear / mxfp8_linear, run those)"
        )
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
    qdata, scale = _quantize_activation(x, input_scale)
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


def checked_scaled_fp8_linear(
    x: torch.Tensor,
    weight: torch.Tensor,
    weight_scale: torch.Tensor,
    bias: torch.Tensor | None,
    input_scale: torch.Tensor | None,
    fast_accum: bool,
) -> torch.Tensor:
    """scaled_fp8_linear for a caller that found fp8_linear_problem(x, weight) None: the fp8 GEMM
    without checking again. Dynamo traces each check once per layer at every compile and warm
    restart (SDXL's UNet: 700 fp8 layers); a layer's trace took 55.8 k Python calls with the
    check repeated and its fallback closure built, against 21.2 k for a bf16 layer
    (bench/dynamo_trace.py's count, 2-core CPU, torch 2.14)."""
    if torch.compiler.is_compiling():
        return torch.ops.comfyx_kernels.scaled_fp8_linear(
            x, weight, weight_scale, bias, input_scale, fast_accum
        )
    return _quantized_linear(
        x, weight, weight_scale, bias, input_scale, fast_accum, TensorCoreFP8Layout.quantize
    )


# The traced fp8 layer as one operator. Dynamo records it as one node instead of interpreting the
# quantize and GEMM code once per layer at every compile and warm restart; being
# CompositeImplicitAutograd, it is decomposed into those same aten operations when AOTAutograd
# traces the graph (which a warm restart skips: its cache hits), so inductor fuses the quantize
# into the kernels around it as before.
_LIBRARY = torch.library.Library("comfyx_kernels", "FRAGMENT")
_LIBRARY.define(
    "scaled_fp8_linear(Tensor x, Tensor weight, Tensor weight_scale, Tensor? bias, "
    "Tensor? input_scale, bool fast_accum) -> Tensor"
)


def _quantized_linear(
    x: torch.Tensor,
    weight: torch.Tensor,
    weight_scale: torch.Tensor,
    bias: torch.Tensor | None,
    input_scale: torch.Tensor | None,
    fast_accum: bool,
    quantize: Callable[..., tuple[torch.Tensor, torch.Tensor]] | None = None,
) -> torch.Tensor:
    """The fp8 layer's activation quantize and GEMM; as the operator's kernel (no `quantize`
    given), with the traceable quantize its decomposition needs."""
    qdata, scale = (quantize or _traceable_quantize)(x, input_scale)
    out = _scaled_mm(
        qdata.reshape(-1, x.shape[-1]), scale, weight.t(), weight_scale, bias, x.dtype, fast_accum
    )
    return out.reshape(*x.shape[:-1], weight.shape[0])


_LIBRARY.impl("scaled_fp8_linear", _quantized_linear, "CompositeImplicitAutograd")


def _quantize_activation(
    x: torch.Tensor, input_scale: torch.Tensor | None
) -> tuple[torch.Tensor, torch.Tensor]:
    if torch.compiler.is_compiling():
        return _traceable_quantize(x, input_scale)
    return TensorCoreFP8Layout.quantize(x, input_scale, torch.float8_e4m3fn)


def _traceable_quantize(
    x: torch.Tensor, scale: torch.Tensor | None
) -> tuple[torch.Tensor, torch.Tensor]:
    """The activation's quantize as plain torch ops, for torch.compile: inductor fuses the divide
    and the cast (and, for a dynamic scale, the amax) into the kernels around them (the norm or
    modulation before a linear), where the opaque custom op would cost a pass of its own over the
    activation. Same formula as the kernels: a dynamic scale is max(amax / 448, tiny),
    q = saturate(x / scale), rounded to nearest even.
    """
    fp8_max = FP8_MAX[torch.float8_e4m3fn]
    if scale is None:
        # eager's rule, the kernels' IEEE divide: amax / 448 with 448 a Python number rounds
        # differently on CUDA (a multiply by the reciprocal), 1 ulp off in some scales; with
        # x / scale on an fp8 rounding midpoint, which bf16 inputs often are, that moved those
        # elements a whole fp8 step (43 of 6144: 8.8e-3 relative output error, H100)
        scale = dynamic_scale(x.abs().amax(), torch.float8_e4m3fn)
    qdata = (x.float() / scale).clamp(-fp8_max, fp8_max).to(torch.float8_e4m3fn)
    return qdata, scale


def fp8_linear_problem(x: torch.Tensor, weight: torch.Tensor) -> str | None:
    """Why x @ weight.T for an fp8 weight (N, K) cannot run on fp8 tensor cores, or None."""
    if x.shape[-1] != weight.shape[-1]:
        return f"input has {x.shape[-1]} features, the weight takes {weight.shape[-1]}"
    return _gemm_problem(x.device, weight.shape[1], weight.shape[0])
