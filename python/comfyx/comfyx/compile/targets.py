"""Which modules of a ComfyUI model get compiled, and how each is put in place for a call."""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable
from typing import Any

import torch
from torch import nn

from comfyx.comfyui.blocks import is_block_list

log = logging.getLogger(__name__)

WHOLE_MODEL = ("diffusion_model",)
# transformer_options entries through which a UNet's transformer blocks find the patches meant for
# their position (the level, the block within it, the spatial transformer's index in the UNet)
POSITION_KEYS = ("block", "block_index", "transformer_index")
POSITION_USERS = ("patches", "patches_replace", "optimized_attention_override")


def compile_keys(base_model: nn.Module, transformer_blocks_only: bool, regions: bool = False) -> tuple[str, ...]:
    """Attribute paths (from ComfyUI's BaseModel) of the modules to compile.

    Blocks only: a DiT's members of its lists of identical blocks (Flux's ``double_blocks``/
    ``single_blocks``, WAN's ``blocks``, SD3's ``joint_blocks``). Blocks of one shape share their
    compiled code, so a compile, and a warm restart's trace, cost one block of each kind whatever
    the depth. A model without such lists, a UNet, compiles whole, unless ``regions`` asks for its
    spatial transformers and ResNet blocks (:func:`unet_regions`).
    """
    root = base_model.diffusion_model
    region_keys = [f"{WHOLE_MODEL[0]}.{path}" for path in unet_regions(root)] if regions else []
    if region_keys:
        return tuple(region_keys)
    if not transformer_blocks_only:
        return WHOLE_MODEL
    keys = tuple(
        f"{WHOLE_MODEL[0]}.{name}.{index}"
        for name, child in root.named_children()
        if is_block_list(child)
        for index in range(len(child))
    )
    return keys or WHOLE_MODEL


def unet_regions(root: nn.Module) -> list[str]:
    """Paths (from ``root``) of a ComfyUI UNet's spatial transformers and ResNet blocks, the modules that
    hold nearly all of its work; none for another model. What is left between them (the time and label
    embeddings, down- and upsampling convolutions, the output head) runs eager.

    SDXL, 1024x1024, fp8, on an H100 (bench/results/e2e.md): compiled so, its first step took 53.9 s
    cold and 11.7 s after a restart, against 108.7 s and 36.2 s compiled whole, but it sampled at 0.83x
    the whole UNet's speed (15.9 against 19.3 it/s; compiled as its 70 transformer blocks alone, 15.9
    against 25.4 on another H100): an opt-in for those who restart more than they sample.
    """
    kinds = _region_kinds()  # not their video subclasses, which ComfyUI calls otherwise
    return [name for name, module in root.named_modules() if type(module) in kinds]


def in_place(module: nn.Module) -> bool:
    """Whether ``module`` must stay in the model while compiled (ComfyUI dispatches on its type)."""
    return isinstance(module, _region_kinds())


def _region_kinds() -> tuple[type, ...]:
    from comfy.ldm.modules.attention import SpatialTransformer
    from comfy.ldm.modules.diffusionmodules.openaimodel import ResBlock

    return SpatialTransformer, ResBlock


class CompiledForwards:
    """Compiled forwards for modules that stay in place: one compiled function per class, taking the
    module as its first argument, so that modules of one class and shape share one graph.

    A UNet's levels differ in shape (SDXL at 1024x1024: 128, 64 and 32 latent pixels a side, 320 to
    1280 channels), so each shape compiles specialised, where torch's automatic dynamic would make
    every module after the first shape-generic. A spatial transformer is called without its
    position (see :func:`position_free`).
    """

    def __init__(self, compile_kwargs: dict[str, Any]):
        self.kwargs = {**compile_kwargs, "dynamic": compile_kwargs.get("dynamic") or False}
        self._by_class: dict[type, Callable] = {}

    def for_module(self, module: nn.Module) -> Callable:
        """The function to set as ``module.forward`` for a compiled call."""
        from comfy.ldm.modules.attention import SpatialTransformer

        cls = type(module)
        if cls not in self._by_class:
            self._by_class[cls] = torch.compile(cls.forward, **self.kwargs)
        compiled = self._by_class[cls]
        if isinstance(module, SpatialTransformer):
            def forward(x: torch.Tensor, context: Any = None, transformer_options: dict | None = None) -> torch.Tensor:
                return compiled(module, x, context, position_free(transformer_options or {}))
        else:
            def forward(*args: Any, **kwargs: Any) -> torch.Tensor:
                return compiled(module, *args, **kwargs)
        return forward


def position_free(transformer_options: dict[str, Any]) -> dict[str, Any]:
    """``transformer_options`` for a compiled spatial transformer: without the block's position where
    nothing in them looks it up.

    ComfyUI's transformer block reads ``transformer_options["block"]`` and ``["block_index"]`` to
    find the patches meant for its position (``patches_replace`` is keyed by it), and Dynamo guards on
    them even when nothing is patched: every spatial transformer would compile anew. Without them,
    as a block outside any UNet level gets them, modules of one shape share one graph; where patches
    or an attention override are set they may look the position up, and the options go as they are
    (one compile per position).
    """
    users = tuple(key for key in POSITION_USERS if transformer_options.get(key))
    if users:
        _say_positions_kept(users)
        return transformer_options
    return {key: value for key, value in transformer_options.items() if key not in POSITION_KEYS}


@functools.cache
def _say_positions_kept(users: tuple[str, ...]) -> None:
    log.info("comfyx compile: transformer_options sets %s, which may look a block's position up: each of the "
             "UNet's spatial transformers compiles for its own position (one graph per position, not per shape)",
             ", ".join(users))
