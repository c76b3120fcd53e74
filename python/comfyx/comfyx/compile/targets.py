"""Which modules of a ComfyUI model get compiled, and what is swapped in for each."""

from __future__ import annotations

import functools
import logging
from typing import Any

import torch
from torch import nn

from comfyx.comfyui.blocks import block_paths, is_block_list

log = logging.getLogger(__name__)

WHOLE_MODEL = ("diffusion_model",)
# transformer_options entries through which a UNet's transformer block finds the patches meant for
# its position (transformer_options' "block" and "block_index")
POSITION_KEYS = ("block", "block_index")
POSITION_USERS = ("patches", "patches_replace", "optimized_attention_override")


def compile_keys(base_model: nn.Module, transformer_blocks_only: bool) -> tuple[str, ...]:
    """Attribute paths (from ComfyUI's BaseModel) of the modules to compile.

    Blocks only: the members of the diffusion model's lists of identical blocks: a DiT's own
    (Flux's ``double_blocks``/``single_blocks``, WAN's ``blocks``, SD3's ``joint_blocks``), a
    UNet's ``transformer_blocks`` inside its spatial transformers (its ``input_blocks`` and
    ``output_blocks`` hold containers that ComfyUI dispatches on with ``isinstance``, which a
    compiled wrapper would break). Blocks of one shape share their compiled code, so a compile,
    and a warm restart's trace, cost one block of each shape whatever the depth: SDXL's UNet traced
    in 0.6 s as two blocks against 15.2 s whole (700 fp8 layers, Dynamo alone, 2-core CPU). The
    rest of a UNet (its ResNet blocks, convolutions, norms) runs eager. A model without such
    lists compiles whole.
    """
    root = base_model.diffusion_model
    if not transformer_blocks_only:
        return WHOLE_MODEL
    top = [
        f"{WHOLE_MODEL[0]}.{name}.{index}"
        for name, child in root.named_children()
        if is_block_list(child)
        for index in range(len(child))
    ]
    keys = top or [f"{WHOLE_MODEL[0]}.{path}" for path in block_paths(root)]
    if not keys:
        log.info("comfyx compile: %s has no list of transformer blocks; compiling it whole", type(root).__name__)
        return WHOLE_MODEL
    return tuple(keys)


def compiled_module(module: nn.Module, compile_kwargs: dict[str, Any]) -> nn.Module:
    """What runs in ``module``'s place: ``module`` under torch.compile, called without its position where
    ComfyUI's UNet block would take one (see :class:`PositionFreeBlock`)."""
    from comfy.ldm.modules.attention import BasicTransformerBlock

    if not isinstance(module, BasicTransformerBlock):
        return torch.compile(module, **compile_kwargs)
    # a UNet's blocks differ in shape by level (SDXL: 4096 tokens x 640, 1024 x 1280 at 1024x1024):
    # specialised graphs for each, where torch's automatic dynamic would make every block after the
    # first shape-generic
    kwargs = {**compile_kwargs, "dynamic": compile_kwargs.get("dynamic") or False}
    return PositionFreeBlock(torch.compile(module, **kwargs))


class PositionFreeBlock(nn.Module):
    """A UNet transformer block (ComfyUI's ``BasicTransformerBlock``), compiled, called without its position.

    The block reads ``transformer_options["block"]`` and ``["block_index"]`` to look its patches up
    (``patches_replace`` is keyed by position) and Dynamo guards on them even when nothing is
    patched: every one of SDXL's 70 blocks would compile anew, past the recompile limit. Where no
    entry that uses the position is set, the block gets ``transformer_options`` without it, as the
    first block of its level would, so blocks of one shape share one graph; where one is, it gets
    them as they are (one compile per position).
    """

    def __init__(self, compiled: nn.Module):
        super().__init__()
        self.compiled = compiled

    def forward(self, x: torch.Tensor, context: torch.Tensor | None = None,
                transformer_options: dict[str, Any] | None = None) -> torch.Tensor:
        options = transformer_options or {}
        users = tuple(key for key in POSITION_USERS if options.get(key))
        if users:
            _say_positions_kept(users)
        else:
            options = {key: value for key, value in options.items() if key not in POSITION_KEYS}
        return self.compiled(x, context=context, transformer_options=options)


@functools.cache
def _say_positions_kept(users: tuple[str, ...]) -> None:
    log.info("comfyx compile: transformer_options sets %s, which may look a block's position up: each of the "
             "UNet's transformer blocks compiles for its own position (one graph per block, not per shape)",
             ", ".join(users))
