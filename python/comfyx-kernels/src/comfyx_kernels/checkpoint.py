"""FP8 checkpoint formats ComfyUI reads, to and from QuantizedTensor weights.

In memory a quantized layer is `<layer>.weight` (a QuantizedTensor) plus, optionally,
`<layer>.input_scale` (float32, the static activation scale). On disk:

- "scaled_fp8" (ComfyUI v0.3.64): `<layer>.weight` fp8, `<layer>.scale_weight`,
  `<layer>.scale_input`, and one marker tensor `<prefix>scaled_fp8` whose dtype is the fp8
  dtype (no elements: ComfyUI then also enables fp8 matmul and input scaling).
- "comfy_quant" (newer ComfyUI): `<layer>.weight` fp8, `<layer>.weight_scale`,
  `<layer>.input_scale`, and `<layer>.comfy_quant`, JSON bytes like {"format": "float8_e4m3fn"}.
"""

from __future__ import annotations

import json

import torch

from .constraints import FP8_DTYPES
from .quantized_tensor import QuantizedTensor

FORMATS = ("scaled_fp8", "comfy_quant")
_FP8_BY_NAME = {str(d).removeprefix("torch."): d for d in FP8_DTYPES}
_WEIGHT = ".weight"


def to_checkpoint(
    state_dict: dict[str, torch.Tensor], checkpoint_format: str, prefix: str = ""
) -> dict[str, torch.Tensor]:
    """State dict with QuantizedTensor weights → tensors in `checkpoint_format`."""
    if checkpoint_format not in FORMATS:
        raise ValueError(f"unknown fp8 checkpoint format {checkpoint_format!r}; known: {FORMATS}")
    out: dict[str, torch.Tensor] = {}
    fp8_dtypes = set()
    for key, value in state_dict.items():
        layer = key.removesuffix(_WEIGHT)
        if key.endswith(".input_scale"):
            layer = key.removesuffix(".input_scale")
            name = "scale_input" if checkpoint_format == "scaled_fp8" else "input_scale"
            out[f"{layer}.{name}"] = value.float().reshape(())
        elif key.endswith(_WEIGHT) and isinstance(value, QuantizedTensor):
            out[key] = value.qdata.contiguous()
            fp8_dtypes.add(value.qdata.dtype)
            if checkpoint_format == "scaled_fp8":
                out[f"{layer}.scale_weight"] = value.scale.clone()
            else:
                out[f"{layer}.weight_scale"] = value.scale.clone()
                config = json.dumps({"format": str(value.qdata.dtype).removeprefix("torch.")})
                out[f"{layer}.comfy_quant"] = torch.tensor(
                    list(config.encode("utf-8")), dtype=torch.uint8
                )
        else:
            out[key] = value
    if checkpoint_format == "scaled_fp8" and fp8_dtypes:
        if len(fp8_dtypes) > 1:
            raise ValueError("scaled_fp8 checkpoints hold one fp8 dtype; got e4m3fn and e5m2")
        out[f"{prefix}scaled_fp8"] = torch.empty(0, dtype=fp8_dtypes.pop())
    return out


def _orig_dtype(state_dict: dict[str, torch.Tensor], layer: str) -> torch.dtype:
    bias = state_dict.get(f"{layer}.bias")
    return bias.dtype if bias is not None and bias.is_floating_point() else torch.bfloat16


def from_checkpoint(
    state_dict: dict[str, torch.Tensor], compute_dtype: torch.dtype | None = None
) -> dict[str, torch.Tensor]:
    """Tensors in either fp8 format → state dict with QuantizedTensor weights.

    Each weight stands for `compute_dtype`, or its layer's bias dtype, or bfloat16.
    """
    markers = [k for k in state_dict if k == "scaled_fp8" or k.endswith(".scaled_fp8")]
    out: dict[str, torch.Tensor] = {}
    consumed: set[str] = set(markers)
    for key, value in state_dict.items():
        if not key.endswith(_WEIGHT) or value.dtype not in FP8_DTYPES:
            continue
        layer = key.removesuffix(_WEIGHT)
        quant_key = f"{layer}.comfy_quant"
        if quant_key in state_dict:
            config = json.loads(bytes(state_dict[quant_key].tolist()).decode("utf-8"))
            fmt = config.get("format")
            if _FP8_BY_NAME.get(fmt) != value.dtype:
                raise ValueError(f"{quant_key} says format {fmt!r} but {key} is {value.dtype}")
            scale_key, input_key = f"{layer}.weight_scale", f"{layer}.input_scale"
            consumed.add(quant_key)
        elif markers:
            scale_key, input_key = f"{layer}.scale_weight", f"{layer}.scale_input"
        else:
            continue  # plain fp8 weight without a scale: not ours to interpret
        scale = state_dict.get(scale_key)
        if scale is None:
            raise ValueError(f"{key} is fp8 but {scale_key} is missing")
        dtype = compute_dtype or _orig_dtype(state_dict, layer)
        out[key] = QuantizedTensor(value, scale.float().reshape(()).clone(), dtype)
        consumed.update({key, scale_key})
        if input_key in state_dict:
            out[f"{layer}.input_scale"] = state_dict[input_key].float().reshape(())
            consumed.add(input_key)
    for key, value in state_dict.items():
        if key not in consumed:
            out[key] = value
    return out
