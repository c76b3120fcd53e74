"""ComfyUI custom-node entry point for comfyx (loaded by ComfyUI's own node loader)."""

from comfyx.nodes import NODE_CLASS_MAPPINGS, NODE_DISPLAY_NAME_MAPPINGS

__all__ = ["NODE_CLASS_MAPPINGS", "NODE_DISPLAY_NAME_MAPPINGS"]
