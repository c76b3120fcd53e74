"""Newer ComfyUI's per-layer ``comfy_quant`` checkpoints, loaded by ComfyUI v0.3.64.

v0.3.64 knows one fp8 checkpoint format, ``scaled_fp8``, by its marker tensor; a checkpoint whose
layers carry ``comfy_quant`` metadata (``weight_scale``, ``input_scale``) has no marker, and
v0.3.64 would build the whole model in fp8 and load the weights without their scales. After
ComfyUI detects such a model, comfyx marks it as scaled fp8: ComfyUI then computes in
bf16/fp16, builds the Linear layers for fp8 weights, and comfyx's operation set
(:mod:`comfyx.kernels.ops`) reads each layer's ``comfy_quant`` tensors.
"""

from __future__ import annotations

import functools
import inspect
import logging
from collections import Counter
from collections.abc import Mapping
from types import ModuleType

import torch

from comfyx.kernels.blockscaled import BLOCK_FORMATS
from comfyx.kernels.ops import FP8_BY_NAME, comfy_quant_format

log = logging.getLogger("comfyx.kernels")

SUFFIX = ".comfy_quant"


def comfy_quant_formats(state_dict: Mapping[str, torch.Tensor], prefix: str) -> Counter:
    """How many of the model's layers declare each ``comfy_quant`` format (empty if none).

    Raises UnsupportedQuantFormatError naming the layer whose format comfyx cannot run.
    """
    return Counter(
        comfy_quant_format(tensor, key)
        for key, tensor in state_dict.items()
        if key.startswith(prefix) and key.endswith(SUFFIX)
    )


def storage_dtype(formats: Counter) -> torch.dtype:
    """The fp8 dtype ComfyUI builds the model's Linear layers in: the most common fp8 format's, else
    float8_e4m3fn (an NVFP4 / MXFP8 layer replaces its parameters at load)."""
    fp8 = Counter({name: count for name, count in formats.items() if name in FP8_BY_NAME})
    return FP8_BY_NAME[fp8.most_common(1)[0][0]] if fp8 else torch.float8_e4m3fn


def logical_shapes(state_dict: Mapping[str, torch.Tensor], prefix: str) -> dict[str, torch.Tensor]:
    """``state_dict`` with each NVFP4 / MXFP8 weight replaced by a meta tensor of the shape it stands for.

    ComfyUI detects a model's widths from its weights' shapes (SD's context_dim is a cross-attention
    weight's second dimension): a packed NVFP4 weight has half the columns, and either format pads rows
    to whole blocks (the layer's bias, where it has one, gives the true number).
    """
    shaped = dict(state_dict)
    for key, tensor in state_dict.items():
        if not (key.startswith(prefix) and key.endswith(SUFFIX)):
            continue
        fmt = BLOCK_FORMATS.get(comfy_quant_format(tensor, key))
        layer = key.removesuffix(SUFFIX)
        weight = state_dict.get(layer + ".weight")
        if fmt is None or weight is None or weight.ndim != 2:
            continue
        bias = state_dict.get(layer + ".bias")
        rows = bias.shape[0] if bias is not None else weight.shape[0]
        shaped[layer + ".weight"] = torch.empty(rows, weight.shape[1] * fmt.elements_per_byte, device="meta")
    return shaped


def install_into(model_detection: ModuleType) -> None:
    """Wrap the just-imported ``comfy.model_detection.model_config_from_unet``."""
    detect = model_detection.model_config_from_unet
    signature = inspect.signature(detect)
    if list(signature.parameters)[:2] != ["state_dict", "unet_key_prefix"]:
        log.warning("comfyx kernels: comfy_quant checkpoints not recognised: this ComfyUI's "
                    "model_config_from_unet%s is not v0.3.64's", signature)
        return

    @functools.wraps(detect)
    def model_config_from_unet(state_dict, unet_key_prefix, *args, **kwargs):
        formats = comfy_quant_formats(state_dict, unet_key_prefix)
        shaped = logical_shapes(state_dict, unet_key_prefix) if set(formats) & set(BLOCK_FORMATS) else state_dict
        model_config = detect(shaped, unet_key_prefix, *args, **kwargs)
        if model_config is not None and model_config.scaled_fp8 is None and formats:
            dtype = storage_dtype(formats)
            log.info("comfyx kernels: %s checkpoint with comfy_quant layers (%s): loading them as scaled fp8 "
                     "(%s)", type(model_config).__name__,
                     ", ".join(f"{count} {name}" for name, count in sorted(formats.items())),
                     str(dtype).removeprefix("torch."))
            model_config.scaled_fp8 = dtype
            model_config.optimizations["fp8"] = True
        return model_config

    model_detection.model_config_from_unet = model_config_from_unet
