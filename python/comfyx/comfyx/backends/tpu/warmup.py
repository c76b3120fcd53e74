"""One real sampler step at a given size, batch and cfg, to compile that bucket ahead of requests.

The step runs through the same path a request takes (padding, registry, graph cuts),
with zero conditioning of the model's context width: the compiled program depends on
shapes, not on the prompt. Conditioning shapes are known for SD1.x/2.x (context only)
and SDXL-style models (context plus a 1280-wide pooled vector).
"""

from __future__ import annotations

import torch

from comfyx.backends.tpu import sampling
from comfyx.backends.tpu.registry import xla_compiles

_SDXL_POOLED_WIDTH = 1280


def warm_up(model, width: int, height: int, batch_size: int, cfg: float) -> str:
    """Run one step; returns a one-line status with the compilations it caused."""
    import comfy.samplers

    base = model.model
    context_dim = base.model_config.unet_config.get("context_dim")
    if context_dim is None:
        return f"not warmed up: {type(base).__name__} has no cross-attention context width to build conditioning for"
    cond_extra = {}
    if base.model_config.unet_config.get("adm_in_channels"):
        cond_extra["pooled_output"] = torch.zeros(1, _SDXL_POOLED_WIDTH)
    conditioning = [[torch.zeros(1, 77, context_dim), cond_extra]]

    # this run is the warm-up: neither an automatic one first nor the manual-warm-up warning
    model = model.clone()
    overrides = model.model_options.get(sampling.MODEL_OPTIONS_KEY) or {}
    model.model_options[sampling.MODEL_OPTIONS_KEY] = {**overrides, "warmup": False, "manual_warmup": False}
    guider = comfy.samplers.CFGGuider(model)
    guider.set_conds(conditioning, conditioning)
    guider.set_cfg(cfg)
    channels = base.latent_format.latent_channels
    shape = (batch_size, channels, height // sampling.LATENT_DOWNSCALE, width // sampling.LATENT_DOWNSCALE)
    sigmas = comfy.samplers.calculate_sigmas(model.get_model_object("model_sampling"), "normal", 1)
    before, before_s = xla_compiles()
    guider.sample(torch.randn(shape, generator=torch.Generator().manual_seed(0)), torch.zeros(shape),
                  comfy.samplers.sampler_object("euler"), sigmas, seed=0)
    after, after_s = xla_compiles()
    return (f"warmed up {width}x{height} batch {batch_size} cfg {cfg}: "
            f"{after - before} XLA compilation(s), {after_s - before_s:.1f} s compiling")
