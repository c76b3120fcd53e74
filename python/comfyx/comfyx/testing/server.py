"""``comfyx serve`` (or stock ``main.py``) for tests: the benchmark's server and client (:mod:`comfyx.bench.server`)."""

from __future__ import annotations

import sys
from pathlib import Path

from comfyx.bench.server import (
    ComfyUIServer,
    PromptRejectedError,
    PromptRun,
    ServerError,
    comfyx_command,
    free_port,
    serve_command,
)

__all__ = ["ComfyxServer", "PromptRejectedError", "PromptRun", "ServerError", "comfyx_command", "free_port"]


class ComfyxServer(ComfyUIServer):
    """``comfyx serve --comfyui DIR COMFYX_ARGS -- COMFYUI_ARGS`` on a free loopback port."""

    def __init__(self, comfyui: Path, comfyui_args: list[str], *, comfyx_args: list[str] = (), log_path: Path,
                 env: dict[str, str] | None = None, stock: bool = False):
        """``stock``: run ComfyUI's own ``main.py`` with this interpreter instead (``comfyx_args`` unused)."""
        command = ([sys.executable, str(comfyui / "main.py"), *comfyui_args] if stock
                   else serve_command(comfyui, list(comfyx_args), comfyui_args))
        super().__init__(command, log_path=log_path, env=env)
