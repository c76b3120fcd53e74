"""Constraint rules shared by every backend's NVFP4 / MXFP8 ops: shapes, padding, scale sizes.

Each returns the reason a call cannot run (so a bad shape is a clear error from the registry,
never an assert inside a kernel or a silent wrong answer), or None.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch

from .blockscaled import MXFP8_BLOCK, NVFP4_BLOCK, scale_shape
from .constraints import ShapeRule, device_capability


def matrix(*names: str) -> ShapeRule:
    def rule(args: Mapping[str, Any]) -> str | None:
        for name in names:
            value = args.get(name)
            if value is not None and value.dim() != 2:
                return f"{name} must be 2-D, has shape {tuple(value.shape)}"
        return None

    return rule


def quantize_columns(block: int, pad_flag: str) -> ShapeRule:
    """x's columns must fill whole blocks unless the caller asks for padding."""

    def rule(args: Mapping[str, Any]) -> str | None:
        columns = args["x"].shape[-1]
        if columns % block and not args.get(pad_flag, False):
            return (
                f"x has {columns} columns, not a multiple of the {block}-element block "
                f"(pass {pad_flag}=True to pad with zeros)"
            )
        return None

    return rule


def _scales_problem(name: str, scales: torch.Tensor, rows: int, blocks: int) -> str | None:
    expected = scale_shape(rows, blocks)
    if scales.numel() != expected[0] * expected[1]:
        return (
            f"{name} holds {scales.numel()} scales; a {rows}-row matrix of {blocks} blocks "
            f"per row needs the swizzled {expected[0]}x{expected[1]}"
        )
    return None


def nvfp4_scales(data: str, scales: str) -> ShapeRule:
    """`scales` must be the swizzled block scales of packed NVFP4 `data` (rows, K/2)."""

    def rule(args: Mapping[str, Any]) -> str | None:
        rows, packed = args[data].shape
        if (2 * packed) % NVFP4_BLOCK:
            return f"{data} has {2 * packed} values per row, not a multiple of {NVFP4_BLOCK}"
        return _scales_problem(scales, args[scales], rows, 2 * packed // NVFP4_BLOCK)

    return rule


def mxfp8_scales(data: str, scales: str) -> ShapeRule:
    def rule(args: Mapping[str, Any]) -> str | None:
        rows, columns = args[data].shape
        if columns % MXFP8_BLOCK:
            return f"{data} has {columns} columns, not a multiple of {MXFP8_BLOCK}"
        return _scales_problem(scales, args[scales], rows, columns // MXFP8_BLOCK)

    return rule


def same_k(a: str, b: str) -> ShapeRule:
    def rule(args: Mapping[str, Any]) -> str | None:
        if args[a].shape[1] != args[b].shape[1]:
            return (
                f"{a} {tuple(args[a].shape)} and {b} {tuple(args[b].shape)} "
                "differ in K (both are (rows, K) row-major, the product is a @ b.T)"
            )
        return None

    return rule


def bias_matches(b: str) -> ShapeRule:
    def rule(args: Mapping[str, Any]) -> str | None:
        bias = args.get("bias")
        if bias is not None and (bias.dim() != 1 or bias.shape[0] != args[b].shape[0]):
            return f"bias has shape {tuple(bias.shape)}, needs ({args[b].shape[0]},)"
        return None

    return rule


def activation_matches_packed(x: str, weight: str) -> ShapeRule:
    """x (M, K) against a packed NVFP4 weight (N, K/2)."""

    def rule(args: Mapping[str, Any]) -> str | None:
        k, packed = args[x].shape[-1], args[weight].shape[1]
        if k != 2 * packed:
            return f"{x} has K={k} but {weight} {tuple(args[weight].shape)} packs K={2 * packed}"
        return None

    return rule


def optional_scalar(name: str) -> ShapeRule:
    """An optional per-tensor scale: None or one element."""

    def rule(args: Mapping[str, Any]) -> str | None:
        value = args.get(name)
        if value is not None and value.numel() != 1:
            return f"{name} must hold one element, has shape {tuple(value.shape)}"
        return None

    return rule


def rowwise_fp8_problem(
    device: torch.device, out_dtype: torch.dtype, k: int, n: int | None = None
) -> str | None:
    """Why torch._scaled_mm's row-wise fp8 GEMM cannot compute a (M, k) @ b (n, k).T into
    `out_dtype` on `device`, or None (n None: not checked, for a caller that does not know it
    yet). Tensor metadata and a dict lookup only, so it traces under torch.compile.

    torch 2.11+ has it for sm_89 and sm_90 (CUTLASS's f8f8bf16_rowwise kernels: e4m3 operands,
    b column-major, K and N multiples of 16, float32 scales, bf16 output only); Blackwell
    multiplies MXFP8 natively instead (backends/cublaslt.py)."""
    if device.type != "cuda":
        return f"the row-wise fp8 GEMM needs a CUDA device, operands are on {device}"
    index = device.index if device.index is not None else torch.cuda.current_device()
    capability = device_capability(index)
    if capability != (8, 9) and capability[0] != 9:
        return "the row-wise fp8 GEMM needs sm_89 or sm_90, device is sm_{}{}".format(*capability)
    if out_dtype != torch.bfloat16:
        return f"the row-wise fp8 GEMM writes bfloat16 only, {out_dtype} asked for"
    if k % 16 or (n is not None and n % 16):
        return f"the row-wise fp8 GEMM needs K and N divisible by 16, got K={k} N={n}"
    return None
