"""NVFP4 and MXFP8 Linear layers in ComfyUI, on comfyx_kernels' block-scaled linears.

A layer of this kind holds its weight as the checkpoint stores it (newer ComfyUI's
``comfy_quant`` keys): NVFP4 ``weight`` (uint8, two e2m1 values a byte, rows and columns padded to
16), ``weight_scale`` (swizzled float8_e4m3fn block scales), ``weight_scale_2`` (float32 per-tensor
scale) and optionally ``input_scale``; MXFP8 ``weight`` (float8_e4m3fn, padded to 32) and
``weight_scale`` (swizzled float8_e8m0fnu block scales). The weight stays 4- or 8-bit in memory on
every device; ``nvfp4_linear`` / ``mxfp8_linear`` pick the device's path (Blackwell's block-scaled
tensor cores, comfyx's Hopper/Ada kernels, or dequantize + F.linear, each logged once with why).

LoRA and other weight patches: ComfyUI dequantizes through ``convert_weight``, patches, and stores
through ``set_weight``; the patched weight is encoded at the layer's existing scales (values beyond
them saturate), so that ComfyUI's unpatching, which restores ``weight`` alone, restores the layer,
and rounded stochastically, as ComfyUI stores a patched fp8 weight.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

import torch
import torch.nn.functional as F


@dataclass(frozen=True)
class BlockFormat:
    """What a layer of one block-scaled format stores."""

    name: str
    data_dtype: torch.dtype
    block: int  # elements per block scale; rows and columns are padded to it
    elements_per_byte: int
    scales: tuple[str, ...]  # the layer's scale parameters besides the weight

    def stored_shape(self, out_features: int, in_features: int) -> tuple[int, int]:
        rows, cols = (-(-n // self.block) * self.block for n in (out_features, in_features))
        return rows, cols // self.elements_per_byte


NVFP4 = BlockFormat("nvfp4", torch.uint8, 16, 2, ("weight_scale", "weight_scale_2"))
MXFP8 = BlockFormat("mxfp8", torch.float8_e4m3fn, 32, 1, ("weight_scale",))
BLOCK_FORMATS = {fmt.name: fmt for fmt in (NVFP4, MXFP8)}


class BlockScaledWeightError(ValueError):
    """A checkpoint's NVFP4 / MXFP8 layer does not hold what its format needs (the message says what)."""


def comfy_quant_tensor(name: str) -> torch.Tensor:
    """The ``comfy_quant`` metadata tensor (UTF-8 JSON) of a layer in format ``name``."""
    return torch.tensor(list(json.dumps({"format": name}).encode("utf-8")), dtype=torch.uint8)


def check_stored(fmt: BlockFormat, state_dict: dict, prefix: str, out_features: int, in_features: int) -> None:
    """Raise BlockScaledWeightError unless ``state_dict`` holds a whole ``fmt`` layer of this shape."""
    missing = [name for name in ("weight", *fmt.scales) if prefix + name not in state_dict]
    if missing:
        raise BlockScaledWeightError(f"{prefix}comfy_quant declares {fmt.name}, but "
                                     f"{', '.join(prefix + name for name in missing)} missing")
    weight = state_dict[prefix + "weight"]
    expected = fmt.stored_shape(out_features, in_features)
    if weight.dtype != fmt.data_dtype or tuple(weight.shape) != expected:
        raise BlockScaledWeightError(
            f"{prefix}weight is {weight.dtype} {tuple(weight.shape)}; a {fmt.name} layer of {in_features} in and "
            f"{out_features} out features stores {fmt.data_dtype} {expected}"
        )


def quantize(fmt: BlockFormat, weight: torch.Tensor) -> dict[str, torch.Tensor]:
    """A float (N, K) weight as ``fmt``'s stored tensors (comfyx_kernels' quantizers: comfy-kitchen's rules)."""
    from comfyx_kernels.layouts import TensorCoreMXFP8Layout, TensorCoreNVFP4Layout

    layout = TensorCoreNVFP4Layout if fmt is NVFP4 else TensorCoreMXFP8Layout
    parts = layout.make(weight.float().contiguous())
    stored = {"weight": parts.qdata, "weight_scale": parts.block_scale}
    if fmt is NVFP4:
        stored["weight_scale_2"] = parts.scale.float().reshape(())
    return stored


def dequantize(fmt: BlockFormat, weight: torch.Tensor, scales: dict[str, torch.Tensor], out_features: int,
               in_features: int, dtype: torch.dtype) -> torch.Tensor:
    """The (out_features, in_features) float weight that stored ``weight`` and ``scales`` stand for."""
    from comfyx_kernels import dequantize_mxfp8, dequantize_nvfp4

    block_scale = scales["weight_scale"].to(weight.device)
    if fmt is NVFP4:
        full = dequantize_nvfp4(weight, scales["weight_scale_2"].to(weight.device), block_scale, dtype)
    else:
        full = dequantize_mxfp8(weight, block_scale, dtype)
    return full[:out_features, :in_features]


def encode_at_scales(fmt: BlockFormat, weight: torch.Tensor, scales: dict[str, torch.Tensor],
                     seed: int) -> torch.Tensor:
    """A float (N, K) weight as ``fmt``'s stored data at the given (existing) scales, saturating beyond them.

    Rounded stochastically (seeded), as ComfyUI rounds a patched fp8 weight: a patch smaller than half
    a 4-bit step would vanish under round-to-nearest, since the weight it lands on sits on the grid;
    rounded up with the probability of its distance, it survives in expectation.
    """
    import comfy.float
    from comfyx_kernels.blockscaled import e8m0_to_float, from_swizzled, pack_nibbles

    rows, cols = fmt.stored_shape(*weight.shape)
    cols *= fmt.elements_per_byte
    padded = F.pad(weight.float(), (0, cols - weight.shape[1], 0, rows - weight.shape[0]))
    block_scale = from_swizzled(scales["weight_scale"].to(weight.device), rows, cols // fmt.block)
    if fmt is NVFP4:
        step = block_scale.float() * scales["weight_scale_2"].to(weight.device).float()
    else:
        step = e8m0_to_float(block_scale.view(torch.uint8))
    step = step.repeat_interleave(fmt.block, dim=1)
    scaled = torch.where(step > 0, padded / step, torch.zeros_like(padded))
    if fmt is NVFP4:
        return pack_nibbles(_e2m1_codes_stochastic(scaled.clamp(-6.0, 6.0), seed), hi_first=True)
    limit = torch.finfo(torch.float8_e4m3fn).max
    return comfy.float.stochastic_rounding(scaled.clamp(-limit, limit), torch.float8_e4m3fn, seed=seed)


def _e2m1_codes_stochastic(x: torch.Tensor, seed: int) -> torch.Tensor:
    """float32 values within ±6 → e2m1 codes, each magnitude rounded to one of its two grid neighbours
    with probability proportional to closeness (unbiased)."""
    from comfyx_kernels.blockscaled import E2M1_VALUES

    grid = torch.tensor(E2M1_VALUES[:8], dtype=torch.float32, device=x.device)  # code i: magnitude grid[i]
    magnitude = x.abs()
    upper = torch.bucketize(magnitude, grid)  # grid[upper - 1] < magnitude <= grid[upper]
    lower = (upper - 1).clamp(min=0)
    gap = grid[upper] - grid[lower]
    up_probability = torch.where(gap > 0, (magnitude - grid[lower]) / gap, torch.zeros_like(gap))
    generator = torch.Generator(device=x.device).manual_seed(seed)
    up = torch.rand(x.shape, generator=generator, device=x.device) < up_probability
    return torch.where(up, upper, lower).to(torch.uint8) | (torch.signbit(x).to(torch.uint8) << 3)


def linear(fmt: BlockFormat, input: torch.Tensor, weight: torch.Tensor, scales: dict[str, torch.Tensor],
           bias: torch.Tensor | None, out_features: int, nvfp4_activation: str) -> torch.Tensor:
    """input @ W.T + bias on the device's NVFP4 / MXFP8 path (NVFP4 on sm_89/sm_90: exact with
    ``nvfp4_activation`` "bf16", W4A8 with "fp8"); ``weight`` and ``bias`` already on input's device."""
    import comfyx_kernels

    on = {name: tensor.to(weight.device, non_blocking=True) for name, tensor in scales.items()}
    if fmt is NVFP4:
        return comfyx_kernels.nvfp4_linear(input, weight, on["weight_scale"], on["weight_scale_2"], bias,
                                           input_scale=on.get("input_scale"), out_features=out_features,
                                           activation=nvfp4_activation)
    return comfyx_kernels.mxfp8_linear(input, weight, on["weight_scale"], bias, out_features=out_features)
