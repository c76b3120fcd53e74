"""FP8 formats: their largest finite values and the scale convention.

`scale` is always the dequantization scale: x ≈ q * scale, q = saturate(x / scale).
"""

from __future__ import annotations

import torch

FP8_MAX = {
    torch.float8_e4m3fn: torch.finfo(torch.float8_e4m3fn).max,  # 448
    torch.float8_e5m2: torch.finfo(torch.float8_e5m2).max,  # 57344
}

# A dynamic scale never goes below this, so all-zero inputs quantize to zeros, not NaN.
MIN_DYNAMIC_SCALE = torch.finfo(torch.float32).tiny


def dynamic_scale(amax: torch.Tensor, output_type: torch.dtype) -> torch.Tensor:
    """The dynamic scale of an input with this amax: max(amax / fp8 max, MIN_DYNAMIC_SCALE), the
    division IEEE's, as every kernel computes it. It divides by a device tensor: CUDA divides by a
    Python number as a multiply by its reciprocal, which rounds differently."""
    limit = torch.full((), FP8_MAX[output_type], dtype=torch.float32, device=amax.device)
    return (amax.float() / limit).clamp_(min=MIN_DYNAMIC_SCALE)
