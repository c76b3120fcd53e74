"""Quantized checkpoint formats ComfyUI reads, to and from QuantizedTensor weights.

In memory a quantized layer is `<layer>.weight` (a QuantizedTensor) plus, optionally,
`<layer>.input_scale` (float32, the static activation scale). On disk:

- "scaled_fp8" (ComfyUI v0.3.64, FP8 only): `<layer>.weight` fp8, `<layer>.scale_weight`,
  `<layer>.scale_input`, and one marker tensor `<prefix>scaled_fp8` whose dtype is the fp8
  dtype (no elements: ComfyUI then also enables fp8 matmul and input scaling).
- "comfy_quant" (newer ComfyUI, with comfy-kitchen): `<layer>.comfy_quant`, JSON bytes like
  {"format": "float8_e4m3fn"}, {"format": "nvfp4"} or {"format": "mxfp8"}, beside
  `<layer>.weight` and the layout's scales: `weight_scale` (FP8: per tensor; NVFP4, MXFP8:
  the swizzled block scales), `weight_scale_2` (NVFP4's per-tensor scale), `input_scale`.
  These are comfy-kitchen's QuantizedTensor.state_dict keys, so checkpoints written by either
  library load in the other.

NVFP4 / MXFP8 weights are stored padded to whole blocks (16 / 32 rows and columns); the
unpadded shape is not in the file: `from_checkpoint(..., shapes={key: (N, K)})` gives it
(default: the stored shape, rows from the layer's bias when it has one).
"""

from __future__ import annotations

import json
from collections.abc import Mapping

import torch

from .constraints import FP8_DTYPES
from .layouts import TensorCoreFP8Layout, TensorCoreMXFP8Layout, TensorCoreNVFP4Layout
from .quantized_tensor import QuantizedTensor

FORMATS = ("scaled_fp8", "comfy_quant")
_FP8_BY_NAME = {str(d).removeprefix("torch."): d for d in FP8_DTYPES}
_BLOCK_FORMATS = {"nvfp4": TensorCoreNVFP4Layout, "mxfp8": TensorCoreMXFP8Layout}
_FORMAT_OF_LAYOUT = {layout.name: name for name, layout in _BLOCK_FORMATS.items()}
_WEIGHT = ".weight"


def _config_tensor(format_name: str) -> torch.Tensor:
    config = json.dumps({"format": format_name})
    return torch.tensor(list(config.encode("utf-8")), dtype=torch.uint8)


def _comfy_quant_format(value: QuantizedTensor) -> str:
    return _FORMAT_OF_LAYOUT.get(value._layout_name) or str(value.qdata.dtype).removeprefix(
        "torch."
    )


def to_checkpoint(
    state_dict: dict[str, torch.Tensor], checkpoint_format: str, prefix: str = ""
) -> dict[str, torch.Tensor]:
    """State dict with QuantizedTensor weights → tensors in `checkpoint_format`."""
    if checkpoint_format not in FORMATS:
        raise ValueError(f"unknown checkpoint format {checkpoint_format!r}; known: {FORMATS}")
    out: dict[str, torch.Tensor] = {}
    fp8_dtypes = set()
    for key, value in state_dict.items():
        layer = key.removesuffix(_WEIGHT)
        if key.endswith(".input_scale"):
            layer = key.removesuffix(".input_scale")
            name = "scale_input" if checkpoint_format == "scaled_fp8" else "input_scale"
            out[f"{layer}.{name}"] = value.float().reshape(())
        elif key.endswith(_WEIGHT) and isinstance(value, QuantizedTensor):
            if value._transposed:
                raise ValueError(f"{key} is a transposed view; save the weight itself")
            if checkpoint_format == "scaled_fp8":
                if value._layout_name != TensorCoreFP8Layout.name:
                    raise ValueError(
                        f"scaled_fp8 holds FP8 weights only; {key} is {value._layout_name}"
                    )
                out[key] = value.qdata.contiguous()
                out[f"{layer}.scale_weight"] = value.scale.clone()
                fp8_dtypes.add(value.qdata.dtype)
                continue
            for suffix, tensor in value.state_dict().items():
                out[f"{key}{suffix}"] = tensor.contiguous() if suffix == "" else tensor.clone()
            out[f"{layer}.comfy_quant"] = _config_tensor(_comfy_quant_format(value))
        else:
            out[key] = value
    if checkpoint_format == "scaled_fp8" and fp8_dtypes:
        if len(fp8_dtypes) > 1:
            raise ValueError("scaled_fp8 checkpoints hold one fp8 dtype; got e4m3fn and e5m2")
        out[f"{prefix}scaled_fp8"] = torch.empty(0, dtype=fp8_dtypes.pop())
    return out


def _orig_dtype(state_dict: Mapping[str, torch.Tensor], layer: str) -> torch.dtype:
    bias = state_dict.get(f"{layer}.bias")
    return bias.dtype if bias is not None and bias.is_floating_point() else torch.bfloat16


def _required(state_dict: Mapping[str, torch.Tensor], key: str, why: str) -> torch.Tensor:
    value = state_dict.get(key)
    if value is None:
        raise ValueError(f"{why} but {key} is missing")
    return value


def _block_weight(
    state_dict: Mapping[str, torch.Tensor],
    key: str,
    format_name: str,
    dtype: torch.dtype,
    shape: tuple[int, int] | None,
) -> tuple[QuantizedTensor, set[str]]:
    layer = key.removesuffix(_WEIGHT)
    layout = _BLOCK_FORMATS[format_name]
    why = f"{key} is {format_name}"
    block_scale = _required(state_dict, f"{layer}.weight_scale", why)
    consumed = {key, f"{layer}.weight_scale"}
    scale = None
    if layout is TensorCoreNVFP4Layout:
        scale = _required(state_dict, f"{layer}.weight_scale_2", why).float().reshape(()).clone()
        consumed.add(f"{layer}.weight_scale_2")
    data = state_dict[key]
    if shape is None:
        bias = state_dict.get(f"{layer}.bias")
        stored = layout.logical_shape(data)
        shape = (bias.shape[0] if bias is not None else stored[0], stored[1])
    weight = QuantizedTensor(data, scale, dtype, layout.name, block_scale, tuple(shape))
    return weight, consumed


def from_checkpoint(
    state_dict: dict[str, torch.Tensor],
    compute_dtype: torch.dtype | None = None,
    shapes: Mapping[str, tuple[int, int]] | None = None,
) -> dict[str, torch.Tensor]:
    """Tensors in either format → state dict with QuantizedTensor weights.

    Each weight stands for `compute_dtype`, or its layer's bias dtype, or bfloat16. `shapes`
    maps NVFP4 / MXFP8 weight keys to their unpadded (N, K). comfy_quant formats other than
    FP8, NVFP4 and MXFP8 are left as they are (not ours to interpret).
    """
    markers = [k for k in state_dict if k == "scaled_fp8" or k.endswith(".scaled_fp8")]
    out: dict[str, torch.Tensor] = {}
    consumed: set[str] = set(markers)
    for key, value in state_dict.items():
        if not key.endswith(_WEIGHT):
            continue
        layer = key.removesuffix(_WEIGHT)
        quant_key, input_key = f"{layer}.comfy_quant", f"{layer}.input_scale"
        dtype = compute_dtype or _orig_dtype(state_dict, layer)
        if quant_key in state_dict:
            fmt = json.loads(bytes(state_dict[quant_key].tolist()).decode("utf-8")).get("format")
            if fmt in _BLOCK_FORMATS:
                shape = (shapes or {}).get(key)
                out[key], used = _block_weight(state_dict, key, fmt, dtype, shape)
            elif fmt in _FP8_BY_NAME:
                if _FP8_BY_NAME[fmt] != value.dtype:
                    raise ValueError(f"{quant_key} says format {fmt!r} but {key} is {value.dtype}")
                scale_key = f"{layer}.weight_scale"
                scale = _required(state_dict, scale_key, f"{key} is fp8")
                out[key] = QuantizedTensor(value, scale.float().reshape(()).clone(), dtype)
                used = {key, scale_key}
            else:
                continue
            consumed.update(used | {quant_key})
        elif markers and value.dtype in FP8_DTYPES:
            input_key, scale_key = f"{layer}.scale_input", f"{layer}.scale_weight"
            scale = _required(state_dict, scale_key, f"{key} is fp8")
            out[key] = QuantizedTensor(value, scale.float().reshape(()).clone(), dtype)
            consumed.update({key, scale_key})
        else:
            continue  # plain weight, or an fp8 weight without a scale: not ours to interpret
        if input_key in state_dict:
            out[f"{layer}.input_scale"] = state_dict[input_key].float().reshape(())
            consumed.add(input_key)
    for key, value in state_dict.items():
        if key not in consumed:
            out[key] = value
    return out
