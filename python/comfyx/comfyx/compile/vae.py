"""A VAE's decoder, compiled (``--compile-vae``).

ComfyUI decodes latents through ``first_stage_model.decode``, which for the SD-family and Flux VAEs runs
ComfyUI's ``Decoder`` (``comfy.ldm.modules.diffusionmodules.model``). That module's forward is replaced, on the
module itself (its parameters stay where ComfyUI's ModelPatcher puts them), by a compiled one: Dynamo's saved
trace where one fits (:mod:`comfyx.compile.traces`, so a restart loads it), else ``torch.compile``'s, in the
compile's speed plan.

Why: every SDXL configuration peaked in the VAE decode. Under ``--fast`` the eager decode's working set came
on top of the memory pool the UNet's CUDA graphs keep, adding 3232 MiB to the sampler's peak (stock's decode
added 2368). Compiled with CUDA graphs, the decode is recorded into the same pool of torch's CUDA graph trees
and added 1912 MiB: peak VRAM 0.79x stock's instead of 0.92x. The cost is 35 ms more end to end (0.95 s
against 0.91 s), because the compiled decode is slower than the eager one; that is why ``--fast`` leaves it
off (H100, 1024², ``bench/results/e2e-sdxl-vae.json``).
Other VAEs (video, audio) run as ComfyUI runs them.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import torch

from comfyx.compile.metrics import CompileMetrics
from comfyx.compile.settings import CompileSettings, plan_for
from comfyx.compile.traces import SavedTraces, load_state, process_identity
from comfyx.paths import CompileCaches

log = logging.getLogger(__name__)


class CompiledDecoder:
    """Set as a Decoder's ``forward``: its saved trace for this call, else torch.compile's function. The
    fingerprint is taken again when ComfyUI loads, moves or patches the VAE's model (its load state)."""

    def __init__(self, decoder: torch.nn.Module, model: torch.nn.Module, traces: SavedTraces | None,
                 fallback: Callable):
        self.decoder = decoder
        self.model = model
        self.traces = traces
        self.fallback = fallback

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        traced = None
        if self.traces is not None:
            self.traces.new_sampling(lambda: load_state(self.model))
            traced = self.traces.function_for(self.decoder, args, kwargs)
        return (self.fallback if traced is None else traced)(self.decoder, *args, **kwargs)


def compile_vae_decoder(vae: Any, caches: CompileCaches, cuda_graphs: bool, trace_cache: bool) -> bool:
    """Compile ``vae``'s decoder (a comfy.sd.VAE, changed in place); False where it has none of ComfyUI's
    ``Decoder``. ``cuda_graphs``: replay it as CUDA graphs (the caller checked that they can run)."""
    from comfy.ldm.modules.diffusionmodules.model import Decoder

    model = getattr(vae, "first_stage_model", None)
    decoder = getattr(model, "decoder", None)
    if type(decoder) is not Decoder:
        log.debug("comfyx compile: the VAE %s has no Decoder of ComfyUI's to compile", type(model).__name__)
        return False
    plan = plan_for(CompileSettings(mode="reduce-overhead" if cuda_graphs else "speed"))
    kwargs = plan.compile_kwargs()
    traces = None
    if trace_cache:  # SavedTraces makes its directory when it saves
        traces = SavedTraces(Decoder, kwargs, caches.traces, process_identity(plan.key()),
                             CompileMetrics(f"{type(model).__name__}.decoder"))
    decoder.forward = CompiledDecoder(decoder, model, traces, torch.compile(Decoder.forward, **kwargs))
    log.info("comfyx compile: the VAE's decoder (%s) compiles at its first decode%s", type(model).__name__,
             ", replayed as CUDA graphs" if cuda_graphs else "")
    return True
