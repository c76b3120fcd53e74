"""Flux-family models apply their rotary embeddings with comfyx's RoPE kernel.

ComfyUI's Flux attention (``comfy.ldm.flux.math.attention``, also Chroma's and every model that
builds on Flux's layers) rotates q and k in float32 as several elementwise ops; WAN and HiDream
call ``apply_rope1``/``apply_rope`` from the same module. comfyx's ``apply_rope`` computes the
same float32 formula in one pass over q and k (91% of copy bandwidth on an H100,
bench/results/kernels.md) and returns them in their own dtype, as ComfyUI's ``type_as`` does.

The replacements are installed into ``comfy.ldm.flux.math`` right after ComfyUI imports it, so
the ``from .math import attention`` of every later importer binds them. Inputs the kernels do
not take (a shape mismatch, say) go to ComfyUI's own function, unchanged.
"""

from __future__ import annotations

from collections.abc import Callable
from types import ModuleType

import torch

REPLACED = ("attention", "apply_rope", "apply_rope1")


def install_into(flux_math: ModuleType) -> None:
    """Swap ComfyUI's Flux RoPE functions for comfyx's in the just-imported ``flux_math``."""
    import comfyx_kernels

    from comfyx.kernels.ops import log_once

    originals = {name: getattr(flux_math, name) for name in REPLACED}

    def problem(*tensors: torch.Tensor, freqs_cis: torch.Tensor) -> str | None:
        from comfyx_kernels.rope_layout import shape_problem

        if torch.compiler.is_compiling():
            # sizes are symbols while dynamo traces: the checks would fail on them (measured: every
            # Flux block fell back under comfyx's compile); the custom op checks shapes itself
            return None
        for x in tensors:
            reason = shape_problem(x, freqs_cis)
            if reason is not None:
                log_once("comfyx kernels: RoPE runs as ComfyUI runs it: %s", reason)
                return reason
        return None

    def attention(q, k, v, pe, mask=None, transformer_options={}):  # noqa: B006 - ComfyUI's signature
        if pe is not None and problem(q, k, freqs_cis=pe) is None:
            q, k = comfyx_kernels.apply_rope(q, k, pe)
            q, k, pe = q.to(v.dtype), k.to(v.dtype), None
        return originals["attention"](q, k, v, pe, mask=mask, transformer_options=transformer_options)

    def apply_rope(xq, xk, freqs_cis):
        if problem(xq, xk, freqs_cis=freqs_cis) is not None:
            return originals["apply_rope"](xq, xk, freqs_cis)
        return comfyx_kernels.apply_rope(xq, xk, freqs_cis)

    def apply_rope1(x, freqs_cis):
        if problem(x, freqs_cis=freqs_cis) is not None:
            return originals["apply_rope1"](x, freqs_cis)
        return comfyx_kernels.apply_rope1(x, freqs_cis)

    replacements: dict[str, Callable] = {"attention": attention, "apply_rope": apply_rope, "apply_rope1": apply_rope1}
    for name, function in replacements.items():
        function.__doc__ = f"comfyx's RoPE kernel in ComfyUI's {name} (see comfyx.kernels.rope)"
        function.comfyx_original = originals[name]
        setattr(flux_math, name, function)
