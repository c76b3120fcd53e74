"""Correct float rounding in Triton's CPU interpreter (TRITON_INTERPRET=1 only).

The interpreter truncates float32 → bfloat16 and loses the mantissa carry in its
round-to-nearest-even fp8 conversion (127.7 → 64 in e4m3), so the CPU run of a correct kernel
disagrees with the GPU. Its casts between the float types used here are redone with torch's
conversions, which round as the GPU does; every other cast is left to the interpreter.
Its `tl.dot` multiplies bfloat16 operands as their raw uint16 storage: they are converted to
float32 first (exact), as a tensor core reads them. Its float32 `tl.fma` rounds twice (a * b, then
+ c), where the GPU's rounds once: the NVFP4 quantize kernel's division (a reciprocal and an fma
correction) then missed eager's quotient at 4 of 40 random 256² bf16 matrices; it is computed
once-rounded here.
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


def _fma_float32(a: np.ndarray, b: np.ndarray, c: np.ndarray) -> np.ndarray:
    """float32 a * b + c rounded once: the product is exact in float64 (2 x 24 bits), the sum's
    float64 rounding error (TwoSum) decides round-to-odd, and rounding that to float32 (29 bits
    fewer) is correct."""
    a, b, c = (np.asarray(v, dtype=np.float64) for v in np.broadcast_arrays(a, b, c))
    product = a * b
    total = product + c
    virtual = total - product
    error = (product - (total - virtual)) + (c - virtual)
    even = (total.view(np.int64) & 1) == 0
    odd = np.nextafter(total, np.where(error > 0, np.inf, -np.inf))
    return np.where((error != 0) & even & np.isfinite(total), odd, total).astype(np.float32)


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

    interpreted_fma = builder.create_fma

    def create_fma(self, x, y, z):
        if z.dtype.scalar != tl.float32:
            return interpreted_fma(self, x, y, z)
        return interpreter.TensorHandle(_fma_float32(x.data, y.data, z.data), tl.float32)

    builder.cast_impl = cast_impl
    builder.create_fma = create_fma
    builder.create_fp_to_fp = create_fp_to_fp
    builder.create_dot = create_dot
    builder._comfyx_rounding_fixed = True
