"""Shape rules for RoPE shared by all backends.

freqs_cis has shape (*lead, D/2, 2, 2) where `lead` broadcasts against x.shape[:-1]
(BHLD: (B|1, 1, L, ...); BLHD: (B|1, L, 1, ...)). Output pair k of x is
out[2k+i] = freqs[k, i, 0] * x[2k] + freqs[k, i, 1] * x[2k+1], computed in freqs' dtype.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch


def trim_freqs(x: torch.Tensor, freqs_cis: torch.Tensor) -> torch.Tensor:
    """Drop frequencies for positions beyond x's sequence, as comfy-kitchen does (BHLD)."""
    if x.ndim > 2 and freqs_cis.ndim > 2 and x.shape[2] != 1 and freqs_cis.shape[2] > x.shape[2]:
        return freqs_cis[:, :, : x.shape[2]]
    return freqs_cis


def shape_problem(x: torch.Tensor, freqs_cis: torch.Tensor, name: str = "x") -> str | None:
    """Why x and freqs_cis do not fit together, or None."""
    if x.ndim < 2:
        return f"{name} must have at least 2 dimensions, has shape {tuple(x.shape)}"
    head_dim = x.shape[-1]
    if head_dim % 2:
        return f"{name}'s last dimension must be even, is {head_dim}"
    if tuple(freqs_cis.shape[-3:]) != (head_dim // 2, 2, 2):
        return (
            f"freqs_cis must end in ({head_dim // 2}, 2, 2) for {name} of shape "
            f"{tuple(x.shape)}, has shape {tuple(freqs_cis.shape)}"
        )
    freqs = trim_freqs(x, freqs_cis)
    lead = freqs.shape[:-3]
    if len(lead) > x.ndim - 1:
        return f"freqs_cis has more leading dimensions than {name}"
    for size, target in zip(reversed(lead), reversed(x.shape[:-1]), strict=False):
        if size not in (1, target):
            return (
                f"freqs_cis of shape {tuple(freqs_cis.shape)} does not broadcast over "
                f"{name} of shape {tuple(x.shape)}"
            )
    return None


def four_dims_problem(args: Mapping[str, Any]) -> str | None:
    """Rule for the kernels, which take 4-D inputs (BHLD or BLHD) only."""
    for name in ("x", "xq", "xk"):
        if name in args and args[name].ndim != 4:
            return f"{name} must be 4-D (BHLD or BLHD), has shape {tuple(args[name].shape)}"
    return None


def rope_pair_problem(args: Mapping[str, Any]) -> str | None:
    """Rule for apply_rope(xq, xk, freqs_cis) and apply_rope1(x, freqs_cis)."""
    for name in ("x", "xq", "xk"):
        if name in args:
            problem = shape_problem(args[name], args["freqs_cis"], name)
            if problem:
                return problem
    return None


def has_internal_overlap(x: torch.Tensor) -> bool:
    """True when two indices of x address one element (e.g. expand()ed dimensions)."""
    extent = 1
    for stride, size in sorted(
        (abs(st), sz) for st, sz in zip(x.stride(), x.shape, strict=True) if sz > 1
    ):
        if stride < extent:
            return True
        extent = stride * size
    return False


def inplace_problem(args: Mapping[str, Any]) -> str | None:
    """In-place RoPE writes each element once: its targets must not overlap themselves."""
    targets = [args[name] for name in ("x", "xq", "xk") if name in args]
    for target in targets:
        if target.requires_grad:
            return "in-place RoPE is inference-only: input requires grad"
        if has_internal_overlap(target):
            return "in-place RoPE needs a view without internal overlap (e.g. not expand())"
    if len(targets) == 2 and targets[0].data_ptr() == targets[1].data_ptr():
        return "in-place RoPE got the same tensor as xq and xk"
    return None


def broadcast_freqs(x: torch.Tensor, freqs_cis: torch.Tensor) -> torch.Tensor:
    """freqs as a (*x.shape[:-1], D/2, 2, 2) view; broadcast dimensions get stride 0."""
    freqs = trim_freqs(x, freqs_cis)
    return freqs.expand(*x.shape[:-1], *freqs.shape[-3:])
