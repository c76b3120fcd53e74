"""Run code on every diffusion model and VAE ComfyUI loads, before any node sees it.

Every loader node ends in one of two functions of ``comfy.sd``: ``load_state_dict_guess_config``
(checkpoints: CheckpointLoaderSimple, ImageOnlyCheckpointLoader, ...) and
``load_diffusion_model_state_dict`` (diffusion models alone: UNETLoader, ...). comfyx wraps both
once ComfyUI imports ``comfy.sd``; a callback gets the fresh ModelPatcher and returns the one the
loader hands out (the same, changed in place, or a clone). Every VAE, from a checkpoint or
VAELoader, is a ``comfy.sd.VAE``: a VAE callback gets each one as its constructor returns.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable
from types import ModuleType
from typing import Any

from comfyx.comfyui.hooks import after_import

log = logging.getLogger("comfyx")

Callback = Callable[[Any], Any]
_callbacks: list[Callback] = []
_vae_callbacks: list[Callable[[Any], None]] = []
DONE = "comfyx_load_callbacks_done"  # a patcher a checkpoint load got from the diffusion-model load


def on_diffusion_model_loaded(callback: Callback) -> None:
    """Call ``callback(patcher)`` on every diffusion model loaded from now on (in registration order)."""
    if not _callbacks:
        after_import("comfy.sd", _wrap_loaders)
    _callbacks.append(callback)


def on_vae_loaded(callback: Callable[[Any], None]) -> None:
    """Call ``callback(vae)`` on every comfy.sd.VAE made from now on, once it is built (in registration order)."""
    if not _vae_callbacks:
        after_import("comfy.sd", _wrap_vae)
    _vae_callbacks.append(callback)


def _wrap_vae(sd: ModuleType) -> None:
    init = sd.VAE.__init__

    @functools.wraps(init)
    def __init__(self: Any, *args: Any, **kwargs: Any) -> None:
        init(self, *args, **kwargs)
        for callback in _vae_callbacks:
            callback(self)

    sd.VAE.__init__ = __init__


def _after_load(patcher: Any) -> Any:
    if patcher is None or getattr(patcher, DONE, False):
        return patcher
    for callback in _callbacks:
        patcher = callback(patcher)
    setattr(patcher, DONE, True)
    return patcher


def _wrap_loaders(sd: ModuleType) -> None:
    load_checkpoint = sd.load_state_dict_guess_config
    load_diffusion_model = sd.load_diffusion_model_state_dict

    @functools.wraps(load_checkpoint)
    def load_state_dict_guess_config(*args, **kwargs):
        out = load_checkpoint(*args, **kwargs)
        if out is None or out[0] is None:  # not a checkpoint, or loaded without its model
            return out
        return (_after_load(out[0]), *out[1:])

    @functools.wraps(load_diffusion_model)
    def load_diffusion_model_state_dict(*args, **kwargs):
        return _after_load(load_diffusion_model(*args, **kwargs))

    sd.load_state_dict_guess_config = load_state_dict_guess_config
    sd.load_diffusion_model_state_dict = load_diffusion_model_state_dict
