"""Everything comfyx needs to know about a ComfyUI checkout: finding it, hooking it, launching it."""

from comfyx.comfyui.locate import ComfyUICheckout, ComfyUINotFoundError, find_comfyui

__all__ = ["ComfyUICheckout", "ComfyUINotFoundError", "find_comfyui"]
