"""A node that reports what comfyx sees of the machine and the settings it runs with, for bug reports from the UI."""

from __future__ import annotations

import json
from pathlib import Path

from comfyx.settings.tree import Settings


class ComfyxSystemInfo:
    """Outputs ``comfyx doctor``'s report for this process (its settings, not the environment's) as text."""

    settings: Settings  # set by node_classes
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
        import folder_paths

        from comfyx.cli import doctor

        running = Path(folder_paths.__file__).parent  # the checkout this server runs, not one looked for
        data = doctor.collect(self.settings, str(running))
        text = json.dumps(data, indent=2) if format == "json" else doctor.render_text(data)
        return {"ui": {"text": [text]}, "result": (text,)}


def node_classes(settings: Settings) -> dict[str, type]:
    """The System Info node bound to the process's settings (ComfyUI makes node objects without arguments)."""
    return {"ComfyxSystemInfo": type("ComfyxSystemInfo", (ComfyxSystemInfo,), {"settings": settings})}


NODE_DISPLAY_NAME_MAPPINGS = {"ComfyxSystemInfo": "comfyx System Info"}
