"""Which modules are transformer blocks (for compiling and quantizing only those)."""

from comfyx.comfyui.blocks import block_paths, is_block_list
from torch import nn


class Block(nn.Module):
    def __init__(self):
        super().__init__()
        self.attn = nn.Linear(8, 8)
        self.inner = nn.ModuleList([nn.Linear(8, 8), nn.Linear(8, 8)])  # single layers: not blocks


class Model(nn.Module):
    def __init__(self):
        super().__init__()
        self.embed = nn.Linear(4, 8)
        self.double_blocks = nn.ModuleList([Block(), Block()])
        self.levels = nn.ModuleList([nn.Sequential(nn.Linear(8, 8)), nn.Sequential(nn.ModuleList([Block()]))])


def test_block_lists_at_any_depth_but_not_inside_blocks_or_of_containers():
    model = Model()
    assert block_paths(model) == ["double_blocks.0", "double_blocks.1", "levels.1.0.0"]
    assert not is_block_list(model.levels) and not is_block_list(model.double_blocks[0].inner)
