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

# q = fp8(x / scale) without dividing (csrc/fp8_quotient.cuh argues it in full): RN(1/scale)
# moved down and up by this relative amount gives `below` and `above` with
# below ≤ 1/scale ≤ above (the rounding error of RN is at most 2^-24 relatively, so 2^-22
# leaves a margin). x·below and x·above round to floats around the IEEE quotient; where both
# give the same fp8 code, so does the quotient (fp8 rounding is monotonic). Where they differ
# (an fp8 rounding midpoint in between, a few inputs in a million) the kernels divide.
QUOTIENT_BRACKET = 2.0**-22
# Scales for which 1/scale and its bracket stay normal floats (and x·below cannot be a float32
# subnormal unless the quotient rounds to fp8 zero anyway); others divide everywhere.
BRACKETED_SCALES = (2.0**-100, 2.0**100)
