"""Which modules of a ComfyUI model get compiled."""

from __future__ import annotations

import logging

from torch import nn

from comfyx.comfyui.blocks import is_block_list

log = logging.getLogger(__name__)

WHOLE_MODEL = ("diffusion_model",)


def compile_keys(base_model: nn.Module, transformer_blocks_only: bool) -> tuple[str, ...]:
    """Attribute paths (from ComfyUI's BaseModel) of the modules to compile.

    Blocks only: the members of the diffusion model's own lists of identical blocks
    (Flux's ``double_blocks``/``single_blocks``, WAN's ``blocks``, SD3's ``joint_blocks``).
    Identical blocks share their compiled code, so compile time stays that of one block of
    each kind whatever the depth. A model without such lists, a UNet, compiles whole: its
    ``input_blocks``/``output_blocks`` hold containers that ComfyUI dispatches on with
    ``isinstance`` (a compiled wrapper would break that), and its inner transformer blocks
    read their position from ``transformer_options``, which would cost one dynamo
    recompile per block.
    """
    root = base_model.diffusion_model
    if not transformer_blocks_only:
        return WHOLE_MODEL
    keys = [
        f"{WHOLE_MODEL[0]}.{name}.{index}"
        for name, child in root.named_children()
        if is_block_list(child)
        for index in range(len(child))
    ]
    if not keys:
        log.info("comfyx compile: %s has no list of transformer blocks; compiling it whole", type(root).__name__)
        return WHOLE_MODEL
    return tuple(keys)
