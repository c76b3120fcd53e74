"""Reading the images a workflow wrote.

Pillow and NumPy come with ComfyUI's requirements, not comfyx's: they are imported when an
image is read, so test modules that read images still collect (and skip, saying why) in an
environment without a ComfyUI checkout.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any


def read_rgb(path: Path) -> Any:
    """The image at ``path`` as an (H, W, 3) int16 NumPy array (int16: differences don't wrap)."""
    import numpy as np
    from PIL import Image

    with Image.open(path) as image:
        return np.asarray(image.convert("RGB"), dtype=np.int16)


def image_format(path: Path) -> tuple[str, tuple[int, int]]:
    """(format, (width, height)) of the image file at ``path``, as Pillow reads it."""
    from PIL import Image

    with Image.open(path) as image:
        return image.format, image.size


def psnr(a: Any, b: Any) -> float:
    """Peak signal-to-noise ratio in dB of two 8-bit images of one shape (inf when identical)."""
    import numpy as np

    mse = float(((np.asarray(a, dtype=np.float64) - b) ** 2).mean())
    return float(10 * np.log10(255**2 / mse)) if mse else float("inf")
