"""Quantized layouts: how a QuantizedTensor's raw data and scales encode a float tensor.

Names, state-dict suffixes and `Params` fields are comfy-kitchen's (`comfy_kitchen.tensor`), so
ComfyUI code written for it finds the same attributes:

- TensorCoreFP8Layout: fp8 data (N, K), `scale` float32 per tensor; state dict "", "_scale".
- TensorCoreNVFP4Layout: uint8 data (N', K'/2) padded to 16, `scale` float32 per tensor,
  `block_scale` e4m3 swizzled; state dict "", "_scale" (block scales), "_scale_2" (per tensor).
- TensorCoreMXFP8Layout: e4m3 data (N', K') padded to 32, no per-tensor scale, `block_scale`
  e8m0 swizzled; state dict "", "_scale" (block scales).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch

from .blockscaled import MXFP8_BLOCK, NVFP4_BLOCK, nvfp4_tensor_scale, round_up
from .fp8 import FP8_MAX
from .ops import dequantize_per_tensor_fp8, quantize_fp8_dynamic, quantize_per_tensor_fp8
from .ops_blockscaled import dequantize_mxfp8, dequantize_nvfp4, quantize_mxfp8, quantize_nvfp4

if TYPE_CHECKING:
    from .quantized_tensor import QuantizedTensor


@dataclass(frozen=True)
class Params:
    """comfy-kitchen's layout parameters (its `QuantizedTensor._params`); for MXFP8 `scale` is
    the block scales, as there."""

    scale: torch.Tensor
    orig_dtype: torch.dtype
    orig_shape: tuple[int, ...]
    block_scale: torch.Tensor | None = None
    transposed: bool = False


@dataclass(frozen=True)
class Parts:
    """What a layout stores for one tensor."""

    qdata: torch.Tensor
    scale: torch.Tensor | None
    block_scale: torch.Tensor | None = None


def _as_scale(scale: torch.Tensor | float, device: torch.device) -> torch.Tensor:
    return torch.as_tensor(scale, dtype=torch.float32, device=device).reshape(())


def _check_matrix(name: str, tensor: torch.Tensor) -> None:
    if tensor.dim() != 2:
        raise ValueError(f"{name} quantizes 2-D tensors (weights), got shape {tuple(tensor.shape)}")


class TensorCoreFP8Layout:
    """FP8 (e4m3fn or e5m2) with one float32 dequantization scale per tensor; x ≈ q * scale.

    Matrix products run on fp8 tensor cores through torch._scaled_mm (sm_89 and newer).
    """

    name = "TensorCoreFP8Layout"
    MIN_CAPABILITY = (8, 9)
    Params = Params
    blocked = False  # shape ops act on the data element for element

    @staticmethod
    def quantize(
        tensor: torch.Tensor,
        scale: torch.Tensor | float | None = None,
        dtype: torch.dtype = torch.float8_e4m3fn,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """(fp8 data, float32 scale); scale=None computes amax / fp8 max on the device."""
        if dtype not in FP8_MAX:
            raise ValueError(
                f"TensorCoreFP8Layout stores float8_e4m3fn or float8_e5m2, not {dtype}"
            )
        if scale is None:
            return quantize_fp8_dynamic(tensor, dtype)
        scale = _as_scale(scale, tensor.device)
        return quantize_per_tensor_fp8(tensor, scale, dtype), scale

    @staticmethod
    def dequantize(
        qdata: torch.Tensor, scale: torch.Tensor, orig_dtype: torch.dtype
    ) -> torch.Tensor:
        return dequantize_per_tensor_fp8(qdata, scale, orig_dtype)

    @classmethod
    def make(cls, tensor: torch.Tensor, scale=None, dtype=torch.float8_e4m3fn) -> Parts:
        return Parts(*cls.quantize(tensor, scale, dtype))

    @classmethod
    def restore(cls, qt: QuantizedTensor) -> torch.Tensor:
        return cls.dequantize(qt._qdata, qt._scale, qt._orig_dtype)

    @staticmethod
    def check(parts: Parts) -> None:
        scale = parts.scale
        if scale is None or scale.numel() != 1 or scale.dtype != torch.float32:
            raise ValueError(
                "scale must be one float32 element, got "
                + ("None" if scale is None else f"{scale.dtype} of shape {tuple(scale.shape)}")
            )

    @staticmethod
    def logical_shape(qdata: torch.Tensor) -> tuple[int, ...]:
        return tuple(qdata.shape)

    @staticmethod
    def state_dict_tensors(qt: QuantizedTensor) -> dict[str, torch.Tensor]:
        return {"": qt._qdata, "_scale": qt._scale}

    @staticmethod
    def parts_from_params(qdata: torch.Tensor, params: Params) -> Parts:
        return Parts(qdata, params.scale.float().reshape(()), params.block_scale)

    @staticmethod
    def params_scale(qt: QuantizedTensor) -> torch.Tensor:
        return qt._scale


class _BlockLayout:
    """Shared by NVFP4 and MXFP8: 2-D weights padded to whole blocks, swizzled block scales."""

    MIN_CAPABILITY = (8, 9)  # our Triton GEMMs; native block-scaled tensor cores from sm_100
    Params = Params
    blocked = True  # data and scales do not map 1:1 to elements: shape ops dequantize
    PAD = 1

    @classmethod
    def padded_shape(cls, shape: tuple[int, ...]) -> tuple[int, int]:
        rows, cols = shape
        return round_up(rows, cls.PAD), round_up(cols, cls.PAD)

    @classmethod
    def restore(cls, qt: QuantizedTensor) -> torch.Tensor:
        full = cls.dequantize(qt._qdata, qt._scale, qt._block_scale, qt._orig_dtype)
        rows, cols = qt._orig_shape
        return full if full.shape == (rows, cols) else full[:rows, :cols].contiguous()


class TensorCoreNVFP4Layout(_BlockLayout):
    """NVFP4: e2m1 data (two per byte, even element in the high nibble), float8_e4m3fn scales
    per 16 elements (swizzled), a float32 per-tensor scale; rows and columns padded to 16.
    Linear layers run fused on sm_89/sm_90 (the weight stays 4-bit) and natively from sm_100
    (blockscaled_linear.nvfp4_linear)."""

    name = "TensorCoreNVFP4Layout"
    PAD = NVFP4_BLOCK

    @classmethod
    def make(cls, tensor: torch.Tensor, scale=None, dtype=None) -> Parts:
        """scale=None: comfy-kitchen's amax / (448 · 6), computed the same way."""
        _check_matrix(cls.name, tensor)
        scale = nvfp4_tensor_scale(tensor) if scale is None else _as_scale(scale, tensor.device)
        pad = cls.padded_shape(tuple(tensor.shape)) != tuple(tensor.shape)
        qdata, block_scale = quantize_nvfp4(tensor, scale, pad_16x=pad)
        return Parts(qdata, scale, block_scale)

    @staticmethod
    def dequantize(qdata, scale, block_scale, orig_dtype) -> torch.Tensor:
        return dequantize_nvfp4(qdata, scale, block_scale, orig_dtype)

    @staticmethod
    def check(parts: Parts) -> None:
        TensorCoreFP8Layout.check(parts)
        if parts.qdata.dtype != torch.uint8 or parts.block_scale is None:
            raise ValueError("NVFP4 needs uint8 data and float8_e4m3fn block scales")

    @staticmethod
    def logical_shape(qdata: torch.Tensor) -> tuple[int, ...]:
        return qdata.shape[0], 2 * qdata.shape[1]

    @staticmethod
    def state_dict_tensors(qt: QuantizedTensor) -> dict[str, torch.Tensor]:
        return {"": qt._qdata, "_scale": qt._block_scale, "_scale_2": qt._scale}

    parts_from_params = staticmethod(TensorCoreFP8Layout.parts_from_params)
    params_scale = staticmethod(TensorCoreFP8Layout.params_scale)


class TensorCoreMXFP8Layout(_BlockLayout):
    """MXFP8: float8_e4m3fn data, float8_e8m0fnu scales per 32 elements (swizzled), no
    per-tensor scale; rows and columns padded to 32. Linear layers quantize the activation to
    MXFP8 and run an fp8 GEMM (Triton on sm_89/sm_90, cuBLASLt from sm_100)."""

    name = "TensorCoreMXFP8Layout"
    PAD = MXFP8_BLOCK

    @classmethod
    def make(cls, tensor: torch.Tensor, scale=None, dtype=None) -> Parts:
        _check_matrix(cls.name, tensor)
        if scale is not None:
            raise ValueError("MXFP8 has no per-tensor scale (its block scales come from the data)")
        pad = cls.padded_shape(tuple(tensor.shape)) != tuple(tensor.shape)
        qdata, block_scale = quantize_mxfp8(tensor, pad_32x=pad)
        return Parts(qdata, None, block_scale)

    @staticmethod
    def dequantize(qdata, scale, block_scale, orig_dtype) -> torch.Tensor:
        return dequantize_mxfp8(qdata, block_scale, orig_dtype)

    @staticmethod
    def check(parts: Parts) -> None:
        if parts.qdata.dtype != torch.float8_e4m3fn or parts.block_scale is None:
            raise ValueError("MXFP8 needs float8_e4m3fn data and float8_e8m0fnu block scales")

    @staticmethod
    def logical_shape(qdata: torch.Tensor) -> tuple[int, ...]:
        return tuple(qdata.shape)

    @staticmethod
    def state_dict_tensors(qt: QuantizedTensor) -> dict[str, torch.Tensor]:
        return {"": qt._qdata, "_scale": qt._block_scale}

    @staticmethod
    def parts_from_params(qdata: torch.Tensor, params: Params) -> Parts:
        return Parts(qdata, None, params.scale)  # comfy-kitchen keeps the block scales there

    @staticmethod
    def params_scale(qt: QuantizedTensor) -> torch.Tensor:
        return qt._block_scale


Layout = type[TensorCoreFP8Layout] | type[TensorCoreNVFP4Layout] | type[TensorCoreMXFP8Layout]
LAYOUTS: dict[str, Layout] = {
    layout.name: layout
    for layout in (TensorCoreFP8Layout, TensorCoreNVFP4Layout, TensorCoreMXFP8Layout)
}


def layout_named(name: str) -> Layout:
    try:
        return LAYOUTS[name]
    except KeyError:
        raise ValueError(
            f"unknown quantized layout {name!r}; known: {', '.join(LAYOUTS)}"
        ) from None


get_layout_class = layout_named  # comfy-kitchen's name
