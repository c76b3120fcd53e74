"""Shape buckets: pad latents on the host, crop results after they leave the device.

XLA compiles one program per input shape. Rounding a 520x776 request up to 576x832
(multiples of 64 px) means every size inside that bucket runs the same compiled
program; cropping afterwards keeps the requested size for everything downstream.
Padding is added at the bottom and right, so area conditioning keeps its coordinates.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def bucket(size: int, multiple: int) -> int:
    """``size`` rounded up to a multiple of ``multiple``."""
    return -(-size // multiple) * multiple


def padded_hw(height: int, width: int, multiple: int) -> tuple[int, int]:
    return bucket(height, multiple), bucket(width, multiple)


def pad_replicate(latent: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """``latent`` ([..., H, W]) grown to ``height`` x ``width`` by repeating its last row/column.

    Repeating the edge (rather than zeros) keeps an img2img latent's border statistics;
    for an empty latent it is zeros either way.
    """
    pad_h, pad_w = height - latent.shape[-2], width - latent.shape[-1]
    if pad_h == 0 and pad_w == 0:
        return latent
    flat = latent.reshape(-1, 1, *latent.shape[-2:])
    # replicate padding has no half-precision CPU kernel in every torch build
    grown = F.pad(flat.float(), (0, pad_w, 0, pad_h), mode="replicate").to(latent.dtype)
    return grown.reshape(*latent.shape[:-2], height, width)


def pad_noise(noise: torch.Tensor, height: int, width: int, seed: int | None) -> torch.Tensor:
    """``noise`` grown with fresh Gaussian noise; the requested region keeps its exact values.

    The extra region's noise is drawn from ``seed`` so a padded run is as reproducible as
    an unpadded one, and the image inside the requested region stays seed-determined.
    """
    pad_h, pad_w = height - noise.shape[-2], width - noise.shape[-1]
    if pad_h == 0 and pad_w == 0:
        return noise
    generator = torch.Generator(device="cpu").manual_seed((seed or 0) + 0x5EED)
    grown = torch.randn((*noise.shape[:-2], height, width), generator=generator, dtype=noise.dtype)
    grown[..., : noise.shape[-2], : noise.shape[-1]] = noise
    return grown


def crop(tensor: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """The top-left ``height`` x ``width`` of ``tensor`` ([..., H, W])."""
    return tensor[..., :height, :width]
