"""Native NVFP4 and MXFP8 GEMMs on compute capability >= 10 (Blackwell): cuBLASLt's
block-scaled GEMM through PyTorch (torch.nn.functional.scaled_mm where torch has it, else
torch._scaled_mm), registered on the cuda backend. Shape rules are the eager backend's.

cuBLASLt reads the block scales in the swizzled layout these formats store, and both NVFP4
operands' nibble order permutes K alike, so the product does not depend on it.
"""

from __future__ import annotations

import torch

from ..constraints import Constraints
from ..registry import register
from . import eager_blockscaled as eager

BLACKWELL = (10, 0)
_SCALED_MM = getattr(torch.nn.functional, "scaled_mm", None)


def _native(constraints: Constraints) -> Constraints:
    return Constraints(
        devices=frozenset({"cuda"}),
        dtypes=constraints.dtypes,
        min_capability=BLACKWELL,
        rules=constraints.rules,
    )


def _finish(out: torch.Tensor | tuple, alpha: torch.Tensor | None, bias: torch.Tensor | None):
    out = out[0] if isinstance(out, tuple) else out
    if alpha is not None:
        out = out * alpha.to(out.dtype)
    return out if bias is None else out + bias.to(out.dtype)


@register("cuda", "scaled_mm_nvfp4", _native(eager.SCALED_MM_NVFP4))
def scaled_mm_nvfp4(
    a: torch.Tensor,
    b: torch.Tensor,
    tensor_scale_a: torch.Tensor,
    tensor_scale_b: torch.Tensor,
    block_scale_a: torch.Tensor,
    block_scale_b: torch.Tensor,
    bias: torch.Tensor | None = None,
    out_dtype: torch.dtype = torch.bfloat16,
    alpha: torch.Tensor | None = None,
) -> torch.Tensor:
    fp4 = torch.float4_e2m1fn_x2
    a4, b4 = a.contiguous().view(fp4), b.contiguous().view(fp4).t()
    ts_a, ts_b = tensor_scale_a.reshape(()).float(), tensor_scale_b.reshape(()).float()
    if _SCALED_MM is not None:
        from torch.nn.functional import ScalingType, SwizzleType

        blockwise = [ScalingType.BlockWise1x16, ScalingType.TensorWise]
        swizzle = [SwizzleType.SWIZZLE_32_4_4, SwizzleType.NO_SWIZZLE]
        out = _SCALED_MM(
            a4, b4,
            scale_a=[block_scale_a.reshape(-1), ts_a], scale_recipe_a=blockwise,
            scale_b=[block_scale_b.reshape(-1), ts_b], scale_recipe_b=blockwise,
            swizzle_a=swizzle, swizzle_b=swizzle, bias=bias, output_dtype=out_dtype,
        )  # fmt: skip
        return _finish(out, None, None)
    out = torch._scaled_mm(
        a4, b4, scale_a=block_scale_a.reshape(-1), scale_b=block_scale_b.reshape(-1),
        out_dtype=out_dtype,
    )  # fmt: skip
    return _finish(out, ts_a * ts_b, bias)


@register("cuda", "scaled_mm_mxfp8", _native(eager.SCALED_MM_MXFP8))
def scaled_mm_mxfp8(
    a: torch.Tensor,
    b: torch.Tensor,
    block_scale_a: torch.Tensor,
    block_scale_b: torch.Tensor,
    bias: torch.Tensor | None = None,
    out_dtype: torch.dtype = torch.bfloat16,
) -> torch.Tensor:
    a, b_t = a.contiguous(), b.contiguous().t()
    if _SCALED_MM is not None:
        from torch.nn.functional import ScalingType, SwizzleType

        out = _SCALED_MM(
            a, b_t,
            scale_a=block_scale_a.reshape(-1), scale_recipe_a=ScalingType.BlockWise1x32,
            scale_b=block_scale_b.reshape(-1), scale_recipe_b=ScalingType.BlockWise1x32,
            swizzle_a=SwizzleType.SWIZZLE_32_4_4, swizzle_b=SwizzleType.SWIZZLE_32_4_4,
            bias=bias, output_dtype=out_dtype,
        )  # fmt: skip
        return _finish(out, None, None)
    out = torch._scaled_mm(
        a, b_t, scale_a=block_scale_a.reshape(-1), scale_b=block_scale_b.reshape(-1),
        out_dtype=out_dtype,
    )  # fmt: skip
    return _finish(out, None, bias)
