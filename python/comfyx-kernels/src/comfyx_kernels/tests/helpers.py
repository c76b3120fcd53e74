"""Shared test helpers: which backends can run here, and input makers."""

from __future__ import annotations

import pytest
import torch

import comfyx_kernels
from comfyx_kernels.registry import backends_for

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


def compiled_backend_params(op: str) -> list:
    """The backends other than eager that implement `op`, skipped (with the reason) where they
    cannot run here: what a test compares with eager."""
    unavailable = {s.name: s.reason for s in comfyx_kernels.list_backends() if not s.available}
    params = []
    for name in backends_for(op):
        if name != "eager":
            marks = pytest.mark.skip(reason=unavailable[name]) if name in unavailable else ()
            params.append(pytest.param(name, marks=marks, id=name))
    return params


def triton_param() -> list:
    """["triton"], skipped where it cannot run: the backend of the NVFP4 / MXFP8 kernels."""
    marks = () if "triton" in available_backends() else pytest.mark.skip(reason="no triton")
    return [pytest.param("triton", marks=marks, id="triton")]


def bits(tensor: torch.Tensor) -> torch.Tensor:
    """Raw bit patterns, so comparisons are exact and NaN-safe."""
    view_dtype = {1: torch.uint8, 2: torch.int16, 4: torch.int32}[tensor.element_size()]
    return tensor.contiguous().view(view_dtype)


def assert_bit_equal(actual: torch.Tensor, expected: torch.Tensor) -> None:
    assert actual.shape == expected.shape, (actual.shape, expected.shape)
    assert actual.dtype == expected.dtype, (actual.dtype, expected.dtype)
    differ = bits(actual).cpu() != bits(expected).cpu()
    assert not differ.any(), f"{int(differ.sum())} of {differ.numel()} elements differ"


def fp8_midpoints(fp8_dtype: torch.dtype) -> torch.Tensor:
    """Every value halfway between neighbouring non-negative finite fp8 values (and one past
    the largest, where an unsaturated conversion would round up), in float64."""
    values = torch.arange(256, dtype=torch.int32).to(torch.uint8).view(fp8_dtype).double()
    values = values[values.isfinite() & (values >= 0)].unique()
    above_max = 2 * values[-1] - values[-2]
    values = torch.cat([values, above_max.reshape(1)])
    return (values[1:] + values[:-1]) / 2


def near_midpoints(
    fp8_dtype: torch.dtype, scale: float, largest: float = float("inf")
) -> torch.Tensor:
    """float32 x (on the CPU) with x / scale within a few float32 ulps of an fp8 rounding
    midpoint, both signs, |x / scale| ≤ `largest`: where a quantize kernel must divide."""
    midpoints = fp8_midpoints(fp8_dtype)
    midpoints = midpoints[midpoints <= largest]
    offsets = torch.arange(-6, 7, dtype=torch.float64) * 2.0**-24
    targets = (midpoints[:, None] * (1 + offsets)).reshape(-1)
    x = (targets * scale).float()
    x = torch.cat([x, x.nextafter(torch.tensor(float("inf"))), x.nextafter(torch.tensor(0.0))])
    x = x[(x.double() / scale).abs() <= largest]
    return torch.cat([x, -x])


def allow_rowwise_fp8(monkeypatch: pytest.MonkeyPatch) -> None:
    """The row-wise fp8 GEMM's rule judged on the CPU as on an sm_90 device (its dtype and width
    checks stay; torch 2.14's torch._scaled_mm takes row-wise scaled e4m3 on the CPU), so the
    routes built on it run in CPU tests; on a GPU the real rule decides, and a device without
    that GEMM skips the test."""
    from comfyx_kernels import blockscaled_rules, constraints

    rule = blockscaled_rules.rowwise_fp8_problem
    if device() == "cpu":
        sm90 = torch.device("cuda", 0)
        monkeypatch.setitem(constraints._capabilities, 0, (9, 0))
        monkeypatch.setattr(
            blockscaled_rules, "rowwise_fp8_problem", lambda _device, *rest: rule(sm90, *rest)
        )
        return
    problem = rule(torch.device("cuda"), torch.bfloat16, 32)
    if problem:
        pytest.skip(problem)
