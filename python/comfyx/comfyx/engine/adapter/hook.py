"""Swap ComfyUI's ``execution.PromptExecutor`` for the BMF engine's (no file patching)."""

from __future__ import annotations

import logging
from types import ModuleType

from comfyx.engine.settings import EngineSettings

log = logging.getLogger("comfyx.engine")


def install_into(execution: ModuleType, settings: EngineSettings) -> None:
    """Called right after ComfyUI imports ``execution``; main.py's worker then builds our executor."""
    from comfyx.engine.adapter import progress, running
    from comfyx.engine.adapter.executor import executor_class

    running.install()
    execution.WebUIProgressHandler = progress.handler_for_prompt
    execution.PromptExecutor = executor_class(settings)
    log.info("comfyx: prompts run on the BMF engine")
