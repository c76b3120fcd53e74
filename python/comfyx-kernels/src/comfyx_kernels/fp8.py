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
