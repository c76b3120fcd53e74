"""Which modules of a ComfyUI diffusion model are its transformer blocks."""

from __future__ import annotations

from torch import nn

_CONTAINERS = (nn.ModuleList, nn.Sequential, nn.ModuleDict)


def is_block_list(module: nn.Module) -> bool:
    """A ModuleList of identical blocks (Flux's ``double_blocks``, a UNet's ``transformer_blocks``).

    Identical: one class, not a container, with children of its own (a list of single layers,
    e.g. Linear projections, is no block list).
    """
    if not isinstance(module, nn.ModuleList) or len(module) == 0:
        return False
    kinds = {type(block) for block in module}
    if len(kinds) != 1:
        return False
    (kind,) = kinds
    return not issubclass(kind, _CONTAINERS) and any(True for _ in module[0].children())


def block_paths(root: nn.Module) -> list[str]:
    """Paths (from ``root``) of every member of every block list at any depth, outermost lists first.

    A DiT's blocks are its top-level lists; a UNet's are the ``transformer_blocks`` inside its
    spatial transformers (its ``input_blocks``/``output_blocks`` hold containers, not blocks).
    """
    paths: list[str] = []
    for name, module in root.named_modules():
        if is_block_list(module) and not any(name.startswith(p + ".") for p in paths):
            paths.extend(f"{name}.{index}" if name else str(index) for index in range(len(module)))
    return paths
