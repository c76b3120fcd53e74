"""Shared test helpers: which backends can run here, and input makers."""

from __future__ import annotations

import pytest
import torch

import comfyx_kernels

FLOAT_DTYPES = (torch.float32, torch.float16, torch.bfloat16)
FP8_DTYPES = (torch.float8_e4m3fn, torch.float8_e5m2)


def device() -> str:
    return "cuda" if torch.cuda.is_available() else "cpu"


def available_backends() -> list[str]:
    return [status.name for status in comfyx_kernels.list_backends() if status.available]


def backend_params() -> list:
    """Every backend, skipped (with its reason) where it cannot run here."""
    params = []
    for status in comfyx_kernels.list_backends():
        marks = () if status.available else pytest.mark.skip(reason=status.reason)
        params.append(pytest.param(status.name, marks=marks, id=status.name))
    return params


def bits(tensor: torch.Tensor) -> torch.Tensor:
    """Raw bit patterns, so comparisons are exact and NaN-safe."""
    view_dtype = {1: torch.uint8, 2: torch.int16, 4: torch.int32}[tensor.element_size()]
    return tensor.contiguous().view(view_dtype)


def assert_bit_equal(actual: torch.Tensor, expected: torch.Tensor) -> None:
    assert actual.shape == expected.shape, (actual.shape, expected.shape)
    assert actual.dtype == expected.dtype, (actual.dtype, expected.dtype)
    differ = bits(actual).cpu() != bits(expected).cpu()
    assert not differ.any(), f"{int(differ.sum())} of {differ.numel()} elements differ"
