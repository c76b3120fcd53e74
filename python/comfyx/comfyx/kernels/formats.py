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

from comfyx.kernels.ops import comfy_quant_format

log = logging.getLogger("comfyx.kernels")

SUFFIX = ".comfy_quant"


def comfy_quant_dtype(state_dict: Mapping[str, torch.Tensor], prefix: str) -> torch.dtype | None:
    """The fp8 dtype most of the model's ``comfy_quant`` layers declare, or None if it has none.

    Raises UnsupportedQuantFormatError naming the layer whose format comfyx cannot run.
    """
    formats = Counter(
        comfy_quant_format(tensor, key)
        for key, tensor in state_dict.items()
        if key.startswith(prefix) and key.endswith(SUFFIX)
    )
    return formats.most_common(1)[0][0] if formats else None


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
        model_config = detect(state_dict, unet_key_prefix, *args, **kwargs)
        if model_config is not None and model_config.scaled_fp8 is None:
            dtype = comfy_quant_dtype(state_dict, unet_key_prefix)
            if dtype is not None:
                log.info("comfyx kernels: %s checkpoint with comfy_quant layers (%s): loading them as scaled fp8",
                         type(model_config).__name__, str(dtype).removeprefix("torch."))
                model_config.scaled_fp8 = dtype
                model_config.optimizations["fp8"] = True
        return model_config

    model_detection.model_config_from_unet = model_config_from_unet
