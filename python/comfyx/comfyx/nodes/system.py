"""A node that reports what comfyx sees of the machine, for bug reports from the UI."""

from __future__ import annotations

import json


class ComfyxSystemInfo:
    """Outputs ``comfyx doctor``'s report as text (JSON or readable)."""

    CATEGORY = "comfyx"
    FUNCTION = "report"
    RETURN_TYPES = ("STRING",)
    RETURN_NAMES = ("report",)
    OUTPUT_NODE = True

    @classmethod
    def INPUT_TYPES(cls) -> dict:
        return {"required": {"format": (["text", "json"], {"default": "text"})}}

    @classmethod
    def IS_CHANGED(cls, format: str) -> float:
        return float("nan")  # the machine's state changes between runs: never cache

    def report(self, format: str) -> dict:
        from comfyx.cli import doctor

        data = doctor.collect()
        text = json.dumps(data, indent=2) if format == "json" else doctor.render_text(data)
        return {"ui": {"text": [text]}, "result": (text,)}


NODE_CLASS_MAPPINGS = {"ComfyxSystemInfo": ComfyxSystemInfo}
NODE_DISPLAY_NAME_MAPPINGS = {"ComfyxSystemInfo": "comfyx System Info"}
