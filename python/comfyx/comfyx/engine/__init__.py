"""Prompt executors comfyx can put behind ComfyUI's queue.

``stock`` is ComfyUI's own ``execution.PromptExecutor``; ``bmf`` runs prompts on the
BMF graph runtime (:mod:`comfyx.engine.adapter`) and is the default. :func:`install` is
called before ComfyUI's ``main.py`` runs, so it imports nothing of ComfyUI: it registers
a hook that replaces the executor once ComfyUI imports its ``execution`` module. The BMF
engine's environment variables are read and checked there, once (:mod:`.settings`).
"""

from __future__ import annotations

import os

ENGINES = ("stock", "bmf")
DEFAULT_ENGINE = "bmf"


class EngineUnavailableError(RuntimeError):
    """The requested engine cannot run in this environment; the message says why."""


def install(name: str) -> None:
    """Make ComfyUI's prompt worker use engine ``name``; raises EngineSettingsError for a bad engine variable."""
    if name not in ENGINES:
        raise EngineUnavailableError(f"unknown engine {name!r}; choose one of {', '.join(ENGINES)}")
    reason = unavailable_reason(name)
    if reason is not None:
        raise EngineUnavailableError(reason)
    if name == "bmf":
        from comfyx.comfyui.hooks import after_import
        from comfyx.engine.adapter.hook import install_into
        from comfyx.engine.settings import from_environ

        settings = from_environ(os.environ)
        after_import("execution", lambda execution: install_into(execution, settings))


def resolve(name: str | None) -> tuple[str, str | None]:
    """The engine to install for ``--engine name``, and why the default was not used (None if it was).

    An engine asked for by name is returned as is (:func:`install` refuses it if it cannot
    run). With no name, the default (``bmf``) when it can run here, else ``stock`` and the
    reason, which the caller reports once.
    """
    if name is not None:
        return name, None
    reason = unavailable_reason(DEFAULT_ENGINE)
    if reason is None:
        return DEFAULT_ENGINE, None
    return "stock", reason


def unavailable_reason(name: str) -> str | None:
    """Why engine ``name`` cannot run here, or None when it can."""
    if name == "stock":
        return None
    if name == "bmf":
        from comfyx.engine.core.pool import bmf_unavailable_reason

        return bmf_unavailable_reason()
    return f"unknown engine {name!r}"
