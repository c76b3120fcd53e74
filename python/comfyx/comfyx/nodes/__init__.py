"""comfyx's ComfyUI nodes, gathered from the concern that owns each one.

ComfyUI loads them through ``comfyui_entry/comfyx_nodes.py``: ``comfyx serve`` adds
that directory to ComfyUI's ``custom_nodes`` search path, so nothing is copied into a
ComfyUI checkout (which may be read-only, e.g. in the Nix store).
"""

from __future__ import annotations

from pathlib import Path

from comfyx.backends.tpu import nodes as tpu_nodes
from comfyx.compile import nodes as compile_nodes
from comfyx.kernels import nodes as kernel_nodes
from comfyx.nodes import system

#: Directory to add to ComfyUI's ``custom_nodes`` folder paths.
COMFYUI_ENTRY_DIR = Path(__file__).with_name("comfyui_entry")

_NODE_MODULES = (system, tpu_nodes, compile_nodes, kernel_nodes)

NODE_CLASS_MAPPINGS: dict[str, type] = {}
NODE_DISPLAY_NAME_MAPPINGS: dict[str, str] = {}
for _module in _NODE_MODULES:
    NODE_CLASS_MAPPINGS.update(_module.NODE_CLASS_MAPPINGS)
    NODE_DISPLAY_NAME_MAPPINGS.update(_module.NODE_DISPLAY_NAME_MAPPINGS)
