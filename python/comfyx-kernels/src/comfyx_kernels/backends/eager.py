"""PyTorch reference backend: runs anywhere torch does, defines the exact results."""

from __future__ import annotations

import torch

from ..constraints import FLOAT_DTYPES, FP8_DTYPES, Constraints, same_device, scalar_tensor
from ..fp8 import FP8_MAX, dynamic_scale
from ..registry import mark_available, register
from ..rope_layout import inplace_problem, rope_pair_problem, trim_freqs

DEVICES = frozenset({"cpu", "cuda", "xpu"})
F32 = frozenset({torch.float32})

QUANTIZE = Constraints(
    devices=DEVICES,
    dtypes={"x": FLOAT_DTYPES, "scale": F32, "output_type": FP8_DTYPES},
    rules=(same_device("x", "scale"), scalar_tensor("scale")),
)
DEQUANTIZE = Constraints(
    devices=DEVICES,
    dtypes={"x": FP8_DTYPES, "scale": F32, "output_type": FLOAT_DTYPES},
    rules=(same_device("x", "scale"), scalar_tensor("scale")),
)
QUANTIZE_DYNAMIC = Constraints(
    devices=DEVICES, dtypes={"x": FLOAT_DTYPES, "output_type": FP8_DTYPES}
)
ROPE1 = Constraints(
    devices=DEVICES,
    dtypes={"x": FLOAT_DTYPES, "freqs_cis": FLOAT_DTYPES},
    rules=(same_device("x", "freqs_cis"), rope_pair_problem),
)
ROPE1_INPLACE = Constraints(
    devices=DEVICES,
    dtypes=ROPE1.dtypes,
    rules=(*ROPE1.rules, inplace_problem),
)
ROPE = Constraints(
    devices=DEVICES,
    dtypes={"xq": FLOAT_DTYPES, "xk": FLOAT_DTYPES, "freqs_cis": FLOAT_DTYPES},
    rules=(same_device("xq", "xk", "freqs_cis"), rope_pair_problem),
)
ROPE_INPLACE = Constraints(
    devices=DEVICES, dtypes=ROPE.dtypes, rules=(*ROPE.rules, inplace_problem)
)


@register("eager", "quantize_per_tensor_fp8", QUANTIZE)
def quantize_per_tensor_fp8(
    x: torch.Tensor, scale: torch.Tensor, output_type: torch.dtype
) -> torch.Tensor:
    # fp32 divide, saturate, round to nearest even: what the GPU kernels do. (comfy-kitchen's
    # eager multiplies by 1/scale rounded to x's dtype and so disagrees with its own kernels.)
    limit = FP8_MAX[output_type]
    scaled = x.float() / scale.reshape(())
    return scaled.clamp_(-limit, limit).to(output_type)


@register("eager", "dequantize_per_tensor_fp8", DEQUANTIZE)
def dequantize_per_tensor_fp8(
    x: torch.Tensor, scale: torch.Tensor, output_type: torch.dtype
) -> torch.Tensor:
    return x.to(output_type) * scale.reshape(()).to(output_type)


@register("eager", "quantize_fp8_dynamic", QUANTIZE_DYNAMIC)
def quantize_fp8_dynamic(
    x: torch.Tensor, output_type: torch.dtype
) -> tuple[torch.Tensor, torch.Tensor]:
    amax = x.abs().amax() if x.numel() else x.new_zeros((), dtype=torch.float32)
    scale = dynamic_scale(amax, output_type)
    return quantize_per_tensor_fp8(x, scale, output_type), scale


@register("eager", "apply_rope1", ROPE1)
def apply_rope1(x: torch.Tensor, freqs_cis: torch.Tensor) -> torch.Tensor:
    # Same operations in the same order as comfy-kitchen's eager RoPE, so results are bit-equal.
    freqs = trim_freqs(x, freqs_cis)
    pairs = x.to(freqs.dtype).reshape(*x.shape[:-1], -1, 1, 2)
    out = freqs[..., 0] * pairs[..., 0]
    out.addcmul_(freqs[..., 1], pairs[..., 1])
    return out.reshape(x.shape).type_as(x)


@register("eager", "apply_rope1_", ROPE1_INPLACE)
def apply_rope1_(x: torch.Tensor, freqs_cis: torch.Tensor) -> None:
    x.copy_(apply_rope1(x, freqs_cis))


@register("eager", "apply_rope", ROPE)
def apply_rope(
    xq: torch.Tensor, xk: torch.Tensor, freqs_cis: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    return apply_rope1(xq, freqs_cis), apply_rope1(xk, freqs_cis)


@register("eager", "apply_rope_", ROPE_INPLACE)
def apply_rope_(xq: torch.Tensor, xk: torch.Tensor, freqs_cis: torch.Tensor) -> None:
    apply_rope1_(xq, freqs_cis)
    apply_rope1_(xk, freqs_cis)


mark_available("eager")
