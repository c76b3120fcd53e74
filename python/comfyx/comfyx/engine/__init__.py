"""Prompt executors comfyx can put behind ComfyUI's queue.

``stock`` is ComfyUI's own ``execution.PromptExecutor``; ``bmf`` (the default) is ComfyUI's
executor with the BMF engine's changes (:mod:`comfyx.engine.adapter`). :func:`install` runs
before ComfyUI's ``main.py``: it starts the BMF worker pool there and then — a pool that cannot
start is a start-up error — and registers the hook that puts the engine in place once ComfyUI
imports its ``execution`` module. The settings arrive checked, in one
:class:`~.settings.EngineSettings` (:mod:`comfyx.settings.tree`).
"""

from __future__ import annotations

from comfyx.comfyui.patching import Patches
from comfyx.engine.settings import DEFAULT_ENGINE, ENGINES, EngineSettings

__all__ = ["DEFAULT_ENGINE", "ENGINES", "EngineUnavailableError", "install", "unavailable_reason"]


class EngineUnavailableError(RuntimeError):
    """The requested engine cannot run in this environment; the message says why."""


def install(settings: EngineSettings) -> Patches:
    """Make ComfyUI's prompt worker use ``settings.name``; returns the record of what the engine replaces.

    For the BMF engine the worker pool starts now; raises EngineUnavailableError when it cannot.
    """
    patches = Patches()
    if settings.name == "stock":
        return patches
    from comfyx.comfyui.hooks import after_import
    from comfyx.engine.adapter.hook import install_into
    from comfyx.engine.core.pool import WorkerPool

    try:
        pool = WorkerPool(settings.workers)
    except Exception as exc:
        first_line = next(iter(str(exc).splitlines()), "")  # BMF appends a Python traceback to its message
        raise EngineUnavailableError(f"the BMF engine could not start its {settings.workers} workers: "
                                     f"{type(exc).__name__}: {first_line}") from exc
    after_import("execution", lambda execution: install_into(execution, settings, pool, patches))
    return patches


def unavailable_reason(name: str) -> str | None:
    """Why engine ``name`` cannot run here, or None when it can."""
    if name == "stock":
        return None
    if name == "bmf":
        from comfyx.engine.core.pool import bmf_unavailable_reason

        return bmf_unavailable_reason()
    return f"unknown engine {name!r}"
