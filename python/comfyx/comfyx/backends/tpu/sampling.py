"""Sampling on the XLA device: shape buckets, one graph per step, autocast, warm-up.

Three of ComfyUI's methods are wrapped once their modules are imported:

- ``CFGGuider.sample`` (every KSampler and SamplerCustom path goes through it): pads
  noise, latent and mask on the host to the shape bucket, records the run in the
  signature registry, runs a warm-up first for a new signature, and crops the result
  after it has left the device.
- ``KSAMPLER.sample``: keeps the sigmas on the host so a step's graph does not bake in
  the step index, cuts the graph with ``mark_step`` every ``--tpu-sync-steps`` steps,
  and enters bf16 autocast on the XLA device when asked.
- ``VAE.decode``: decodes the latent padded to its bucket and crops the pixels, so
  decoding does not compile per requested size either.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
from dataclasses import replace
from types import ModuleType

import torch
import torch.nn.functional as F

from comfyx.backends.tpu import TPUBackend, padding
from comfyx.backends.tpu.registry import Signature
from comfyx.backends.tpu.settings import TPUSettings
from comfyx.comfyui.hooks import after_import

log = logging.getLogger("comfyx.backends.tpu")

#: Per-model overrides set by the TPU Model Optimization node (a dict of TPUSettings fields).
MODEL_OPTIONS_KEY = "comfyx_tpu"

LATENT_DOWNSCALE = 8  # pixels per latent pixel for SD1.x/2.x/SDXL/SD3/Flux VAEs


def install(backend: TPUBackend) -> None:
    after_import("comfy.samplers", lambda samplers: _patch_samplers(samplers, backend))
    after_import("comfy.sd", lambda sd: _patch_vae(sd, backend.settings))


def settings_for(settings: TPUSettings, model_options: dict | None) -> TPUSettings:
    """The process's settings with a model's node-set overrides applied."""
    overrides = (model_options or {}).get(MODEL_OPTIONS_KEY) or {}
    return replace(settings, **overrides)


def signature(model_patcher, noise: torch.Tensor, cfg: float, sampler, sigmas: torch.Tensor,
              settings: TPUSettings) -> Signature:
    """The compilation signature of one sampling run with the (padded) ``noise`` shape."""
    model = model_patcher.model
    dtype = str(model_patcher.model_dtype()).removeprefix("torch.")
    if settings.autocast_bf16:
        dtype += "+autocast-bfloat16"
    sampler_name = getattr(getattr(sampler, "sampler_function", None), "__name__", type(sampler).__name__)
    schedule = hashlib.sha1(sigmas.detach().float().cpu().numpy().tobytes()).hexdigest()[:10]
    # the architecture, not the object: XLA's programs depend on shapes, and ComfyUI loads a
    # checkpoint anew whenever its cache dropped the loader's output
    architecture = f"{type(model).__name__}:{type(model.model_config).__name__}:{model_patcher.model_size()}"
    return Signature(model=architecture, shape=tuple(noise.shape), cfg=float(cfg),
                     sampler=sampler_name, schedule=schedule, steps=len(sigmas) - 1, dtype=dtype)


def run_sampling(backend: TPUBackend, guider, original, noise: torch.Tensor, latent_image: torch.Tensor, sampler,
                 sigmas: torch.Tensor, denoise_mask: torch.Tensor | None, callback, disable_pbar: bool,
                 seed: int | None) -> torch.Tensor:
    """``CFGGuider.sample`` with padding, warm-up and registry bookkeeping; result on the host."""
    settings = settings_for(backend.settings, guider.model_options)
    registry = backend.registry
    height, width = noise.shape[-2:]
    if settings.shape_padding and noise.ndim == 4:
        multiple = max(1, settings.pad_multiple_px // LATENT_DOWNSCALE)
        bucket_h, bucket_w = padding.padded_hw(height, width, multiple)
        if denoise_mask is not None:
            import comfy.sampler_helpers

            mask = comfy.sampler_helpers.prepare_mask(denoise_mask, noise.shape, "cpu")
            # zero: the padded region is not denoised, so it cannot bleed into the image
            denoise_mask = F.pad(mask, (0, bucket_w - width, 0, bucket_h - height))
        noise = padding.pad_noise(noise, bucket_h, bucket_w, seed)
        latent_image = padding.pad_replicate(latent_image, bucket_h, bucket_w)

    sig = signature(guider.model_patcher, noise, guider.cfg, sampler, sigmas, settings)
    if settings.manual_warmup and not registry.seen(sig):
        log.warning("comfyx tpu: %s was not warmed up (--tpu-manual-warmup): this run compiles; run the TPU "
                    "Manual Warmup node at this size, batch and cfg before requests", sig)
    elif settings.warmup and not registry.seen(sig):
        steps = min(settings.warmup_steps, len(sigmas) - 1)
        log.info("comfyx tpu: warming up %s with %d step(s)", sig, steps)
        with registry.measure(sig, warmup=True):
            original(guider, noise, latent_image, sampler, sigmas[: steps + 1], denoise_mask, None, True, seed).cpu()
    with registry.measure(sig):
        samples = original(guider, noise, latent_image, sampler, sigmas, denoise_mask, callback, disable_pbar, seed)
        samples = samples.cpu()  # inside the measurement: XLA executes (and compiles) here
    if settings.debug_metrics:
        import torch_xla.debug.metrics as met

        log.info("comfyx tpu: XLA metrics after %s:\n%s", sig, met.short_metrics_report())
    return padding.crop(samples, height, width)


def _patch_samplers(samplers: ModuleType, backend: TPUBackend) -> None:
    guider_sample = samplers.CFGGuider.sample

    def sample(self, noise, latent_image, sampler, sigmas, denoise_mask=None, callback=None,
               disable_pbar=False, seed=None):
        if sigmas.shape[-1] == 0:
            return guider_sample(self, noise, latent_image, sampler, sigmas, denoise_mask, callback, disable_pbar, seed)
        return run_sampling(backend, self, guider_sample, noise, latent_image, sampler, sigmas, denoise_mask,
                            callback, disable_pbar, seed)

    samplers.CFGGuider.sample = sample

    ksampler_sample = samplers.KSAMPLER.sample

    def ksampler(self, model_wrap, sigmas, extra_args, callback, noise, latent_image=None,
                 denoise_mask=None, disable_pbar=False):
        settings = settings_for(backend.settings, extra_args.get("model_options"))
        step_callback = _sync_callback(callback, settings.sync_steps)
        autocast = (torch.autocast("xla", dtype=torch.bfloat16) if settings.autocast_bf16
                    else contextlib.nullcontext())
        with autocast:
            # host sigmas: sigmas[i] on the device would put the index i into each step's graph
            samples = ksampler_sample(self, model_wrap, sigmas.cpu(), extra_args, step_callback, noise,
                                      latent_image, denoise_mask, disable_pbar)
        _mark_step()
        return samples

    samplers.KSAMPLER.sample = ksampler


def _sync_callback(callback, every: int):
    def step(i, denoised, x, total_steps):
        if (i + 1) % every == 0:
            _mark_step()
        if callback is not None:
            callback(i, denoised, x, total_steps)

    return step


def _mark_step() -> None:
    import torch_xla

    torch_xla.sync()  # torch_xla 2.9's name for xm.mark_step()


def _patch_vae(sd: ModuleType, settings: TPUSettings) -> None:
    decode = sd.VAE.decode

    def padded_decode(self, samples_in, vae_options={}):  # noqa: B006 - ComfyUI's signature
        if not (settings.shape_padding and samples_in.ndim == 4 and isinstance(self.upscale_ratio, int)
                and str(self.device).startswith("xla")):
            return decode(self, samples_in, vae_options)
        height, width = samples_in.shape[-2:]
        multiple = max(1, settings.pad_multiple_px // LATENT_DOWNSCALE)
        bucket_h, bucket_w = padding.padded_hw(height, width, multiple)
        pixels = decode(self, padding.pad_replicate(samples_in, bucket_h, bucket_w), vae_options)
        ratio = self.upscale_ratio
        return pixels[:, : height * ratio, : width * ratio]  # [B, H, W, C] after ComfyUI's movedim

    sd.VAE.decode = padded_decode
