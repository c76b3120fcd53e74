"""Image quality against a reference: PSNR of two PNGs (the same seed on two configurations)."""

from __future__ import annotations

import io


def psnr_png(reference: bytes, image: bytes) -> float | None:
    """PSNR in dB of two 8-bit PNGs of one size (inf when the pixels are equal; None: sizes differ)."""
    import numpy as np
    from PIL import Image

    with Image.open(io.BytesIO(reference)) as a, Image.open(io.BytesIO(image)) as b:
        x = np.asarray(a.convert("RGB"), dtype=np.float64)
        y = np.asarray(b.convert("RGB"), dtype=np.float64)
    if x.shape != y.shape:
        return None
    return psnr(x, y)


def psnr(a: object, b: object) -> float:
    """Peak signal-to-noise ratio in dB of two 8-bit images of one shape (inf when identical)."""
    import numpy as np

    mse = float(((np.asarray(a, dtype=np.float64) - b) ** 2).mean())
    return float(10 * np.log10(255**2 / mse)) if mse else float("inf")
