"""Quantized layouts: how a QuantizedTensor's raw data and scale encode a float tensor."""

from __future__ import annotations

import torch

from .fp8 import FP8_MAX
from .ops import dequantize_per_tensor_fp8, quantize_fp8_dynamic, quantize_per_tensor_fp8


class TensorCoreFP8Layout:
    """FP8 (e4m3fn or e5m2) with one float32 dequantization scale per tensor; x ≈ q * scale.

    Matrix products run on fp8 tensor cores through torch._scaled_mm (sm_89 and newer).
    """

    name = "TensorCoreFP8Layout"
    MIN_CAPABILITY = (8, 9)

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
        scale = torch.as_tensor(scale, dtype=torch.float32, device=tensor.device).reshape(())
        return quantize_per_tensor_fp8(tensor, scale, dtype), scale

    @staticmethod
    def dequantize(
        qdata: torch.Tensor, scale: torch.Tensor, orig_dtype: torch.dtype
    ) -> torch.Tensor:
        return dequantize_per_tensor_fp8(qdata, scale, orig_dtype)


LAYOUTS = {TensorCoreFP8Layout.name: TensorCoreFP8Layout}


def layout_named(name: str) -> type[TensorCoreFP8Layout]:
    try:
        return LAYOUTS[name]
    except KeyError:
        raise ValueError(
            f"unknown quantized layout {name!r}; known: {', '.join(LAYOUTS)}"
        ) from None
