"""Prompt executors comfyx can put behind ComfyUI's queue.

``stock`` is ComfyUI's own ``execution.PromptExecutor``; ``bmf`` runs prompts on the
BMF graph runtime. :func:`install` is called before ComfyUI's ``main.py`` runs.
"""

from __future__ import annotations

ENGINES = ("stock", "bmf")


class EngineUnavailableError(RuntimeError):
    """The requested engine cannot run in this environment; the message says why."""


def install(name: str) -> None:
    """Make ComfyUI's prompt worker use engine ``name``."""
    if name == "stock":
        return
    if name == "bmf":
        raise EngineUnavailableError(unavailable_reason("bmf") or "the BMF engine failed to install")
    raise EngineUnavailableError(f"unknown engine {name!r}; choose one of {', '.join(ENGINES)}")


def unavailable_reason(name: str) -> str | None:
    """Why engine ``name`` cannot run here, or None when it can."""
    if name == "stock":
        return None
    if name == "bmf":
        return "the BMF engine is not part of this comfyx build yet"
    return f"unknown engine {name!r}"
