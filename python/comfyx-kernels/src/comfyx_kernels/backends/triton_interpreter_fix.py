"""Correct float rounding in Triton's CPU interpreter (TRITON_INTERPRET=1 only).

The interpreter truncates float32 → bfloat16 and loses the mantissa carry in its
round-to-nearest-even fp8 conversion (127.7 → 64 in e4m3), so the CPU run of a correct kernel
disagrees with the GPU. Its casts between the float types used here are redone with torch's
conversions, which round as the GPU does; every other cast is left to the interpreter.
Its `tl.dot` multiplies bfloat16 operands as their raw uint16 storage: they are converted to
float32 first (exact), as a tensor core reads them.
"""

from __future__ import annotations

import numpy as np
import torch
import triton.language as tl
from triton.runtime import interpreter

_TORCH_DTYPES = {
    tl.float32: torch.float32,
    tl.float16: torch.float16,
    tl.bfloat16: torch.bfloat16,
    tl.float8e4nv: torch.float8_e4m3fn,
    tl.float8e5: torch.float8_e5m2,
}
# How the interpreter stores each type in numpy (it has no bfloat16 or fp8).
_STORAGE = {
    torch.float32: torch.float32,
    torch.float16: torch.float16,
    torch.bfloat16: torch.uint16,
    torch.float8_e4m3fn: torch.uint8,
    torch.float8_e5m2: torch.uint8,
}


def _torch_cast(data: np.ndarray, source: tl.dtype, target: tl.dtype) -> np.ndarray:
    source_dtype, target_dtype = _TORCH_DTYPES[source], _TORCH_DTYPES[target]
    values = torch.from_numpy(np.ascontiguousarray(data)).view(source_dtype)
    return values.to(target_dtype).view(_STORAGE[target_dtype]).numpy()


def install() -> None:
    builder = interpreter.InterpreterBuilder
    if getattr(builder, "_comfyx_rounding_fixed", False):
        return
    interpreted_cast = builder.cast_impl
    interpreted_fp_to_fp = builder.create_fp_to_fp

    def cast_impl(self, src, dst_type):
        source, target = src.dtype.scalar, dst_type.scalar
        if source in _TORCH_DTYPES and target in _TORCH_DTYPES:
            return interpreter.TensorHandle(_torch_cast(src.data, source, target), target)
        return interpreted_cast(self, src, dst_type)

    def create_fp_to_fp(self, src, dst_type, rounding_mode):
        source, target = src.dtype.scalar, dst_type.scalar
        if source in _TORCH_DTYPES and target in _TORCH_DTYPES:
            return interpreter.TensorHandle(_torch_cast(src.data, source, target), target)
        return interpreted_fp_to_fp(self, src, dst_type, rounding_mode)

    interpreted_dot = builder.create_dot

    def as_float32(operand):
        if operand.dtype.scalar != tl.bfloat16:
            return operand
        return interpreter.TensorHandle(
            _torch_cast(operand.data, tl.bfloat16, tl.float32), tl.float32
        )

    def create_dot(self, a, b, d, input_precision, max_num_imprecise_acc):
        return interpreted_dot(
            self, as_float32(a), as_float32(b), d, input_precision, max_num_imprecise_acc
        )

    builder.cast_impl = cast_impl
    builder.create_fp_to_fp = create_fp_to_fp
    builder.create_dot = create_dot
    builder._comfyx_rounding_fixed = True
