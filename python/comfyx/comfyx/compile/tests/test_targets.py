"""Which modules comfyx's compile takes: a DiT's blocks, or a model without block lists whole (which
``--fast`` replays as CUDA graphs)."""

from __future__ import annotations

from torch import nn

from comfyx.compile.targets import WHOLE_MODEL, compile_keys


class Block(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.proj = nn.Linear(4, 4)


def base_model(diffusion_model: nn.Module) -> nn.Module:
    base = nn.Module()
    base.diffusion_model = diffusion_model
    return base


def test_a_model_with_a_list_of_identical_blocks_compiles_per_block() -> None:
    dit = nn.Module()
    dit.double_blocks = nn.ModuleList([Block(), Block()])
    dit.final = nn.Linear(4, 4)
    base = base_model(dit)
    assert compile_keys(base, transformer_blocks_only=True) == ("diffusion_model.double_blocks.0",
                                                                 "diffusion_model.double_blocks.1")
    assert compile_keys(base, transformer_blocks_only=False) == WHOLE_MODEL


def test_a_model_without_block_lists_compiles_whole() -> None:
    # a list of single layers, or of blocks of two classes, is no block list
    net = nn.Module()
    net.layers = nn.ModuleList([nn.Linear(4, 4), nn.Linear(4, 4)])
    net.mixed = nn.ModuleList([Block(), nn.Sequential(nn.Linear(4, 4))])
    base = base_model(net)
    assert compile_keys(base, transformer_blocks_only=True) == WHOLE_MODEL
