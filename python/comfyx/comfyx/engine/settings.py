"""The BMF engine's settings: environment variables read and checked once, when comfyx starts.

A bad value is a start-up error naming the variable and what it allows; the settings
then travel as one :class:`EngineSettings` to the executor (nothing reads the
environment while prompts run).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

FORCE_ENV = "BMF_COMFY_FORCE"
WORKERS_ENV = "COMFYX_ENGINE_WORKERS"
LOADER_CACHE_ENV = "COMFYX_LOADER_CACHE"
INTERVAL_ENV = "COMFYX_PROGRESS_STATE_INTERVAL"

# Each worker is a BMF scheduler thread of its own; more than this only adds threads.
MAX_WORKERS = 64
MAX_LOADER_CACHE = 64
MAX_INTERVAL = 60.0


class EngineSettingsError(ValueError):
    """An engine environment variable has a value it does not allow; the message says which."""


@dataclass(frozen=True)
class EngineSettings:
    force: bool = True  # BMF_COMFY_FORCE=0: only prompts with extra_data.enable_bmf run on BMF
    workers: int = 8  # COMFYX_ENGINE_WORKERS: BMF worker nodes (threads)
    loader_cache: int = 4  # COMFYX_LOADER_CACHE: loader outputs kept across prompts (0: none)
    progress_interval: float = 0.1  # COMFYX_PROGRESS_STATE_INTERVAL: seconds between progress_state messages


def from_environ(environ: Mapping[str, str]) -> EngineSettings:
    """The settings ``environ`` gives (defaults for unset or empty variables); raises EngineSettingsError."""
    values: dict[str, object] = {}
    force = _get(environ, FORCE_ENV)
    if force is not None:
        if force.lower() not in (*_TRUE, *_FALSE):
            raise EngineSettingsError(f"{FORCE_ENV}={force!r} is not allowed: it takes 1 or 0 (true/false, yes/no, "
                                      "on/off)")
        values["force"] = force.lower() in _TRUE
    for field, name, kind, low, high in (
        ("workers", WORKERS_ENV, int, 1, MAX_WORKERS),
        ("loader_cache", LOADER_CACHE_ENV, int, 0, MAX_LOADER_CACHE),
        ("progress_interval", INTERVAL_ENV, float, 0.0, MAX_INTERVAL),
    ):
        text = _get(environ, name)
        if text is None:
            continue
        try:
            value = kind(text)
        except ValueError:
            value = None
        if value is None or not low <= value <= high:  # the comparison also refuses nan
            allowed = f"a whole number from {low}" if kind is int else f"a number of seconds from {low:g}"
            raise EngineSettingsError(f"{name}={text!r} is not allowed: it takes {allowed} to {high:g}")
        values[field] = value
    return EngineSettings(**values)


_TRUE = ("1", "true", "yes", "on")
_FALSE = ("0", "false", "no", "off")


def _get(environ: Mapping[str, str], name: str) -> str | None:
    value = environ.get(name, "").strip()
    return value or None
