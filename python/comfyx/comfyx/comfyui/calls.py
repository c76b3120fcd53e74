"""Calling a ComfyUI model function once more with the arguments of a real call."""

from __future__ import annotations

from typing import Any


def fresh_call_arguments(args: tuple, kwargs: dict) -> tuple[list, dict]:
    """``args`` and ``kwargs`` with each dict among them copied.

    The model adds keys to transformer_options while it runs, and dynamo guards on its length:
    an extra call (a compile warmup, a calibration pass) on the very dict the real step gets would
    make that step recompile. The sampler hands every step a fresh copy; so does an extra call.
    """
    return [_fresh(a) for a in args], {k: _fresh(v) for k, v in kwargs.items()}


def _fresh(value: Any) -> Any:
    return value.copy() if isinstance(value, dict) else value
