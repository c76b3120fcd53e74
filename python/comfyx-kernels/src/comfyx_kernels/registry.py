"""Backend registry: priority cuda → triton → eager, constraint-checked before every call.

Unlike comfy-kitchen, `use_backend(name)` never runs another backend: if the named one cannot
take the call, `NoCapableBackendError` says why. The backend that ran is recorded so tests and
benchmarks can assert it (`last_backend()`, `backend_trace()`).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from .constraints import Constraints

PRIORITY = ("cuda", "triton", "eager")
# Each dispatch decision (the backend chosen, and why the ones before it were skipped) is logged
# at DEBUG level here, as comfy-kitchen logs on comfy_kitchen.dispatch.
logger = logging.getLogger("comfyx_kernels.dispatch")


class NoCapableBackendError(RuntimeError):
    """No backend can run this call; `reasons` maps each backend to why not."""

    def __init__(self, op: str, reasons: Mapping[str, str]):
        self.op = op
        self.reasons = dict(reasons)
        lines = "\n".join(f"  {name}: {reason}" for name, reason in self.reasons.items())
        super().__init__(f"no backend can run {op}:\n{lines}")


class UnknownBackendError(ValueError):
    pass


@dataclass(frozen=True)
class BackendStatus:
    name: str
    available: bool
    reason: str  # why it is unavailable; "" when available


@dataclass(frozen=True)
class _Implementation:
    function: Callable[..., Any]
    constraints: Constraints


class _Backend:
    def __init__(self, name: str):
        self.name = name
        self.unavailable_reason = "not loaded"
        self.ops: dict[str, _Implementation] = {}


_backends = {name: _Backend(name) for name in PRIORITY}
_local = threading.local()


def mark_available(name: str) -> None:
    _backends[name].unavailable_reason = ""


def mark_unavailable(name: str, reason: str) -> None:
    _backends[name].unavailable_reason = reason


def register(backend: str, op: str, constraints: Constraints) -> Callable:
    """Decorator: `function` implements `op` on `backend` for arguments meeting `constraints`."""

    def decorate(function: Callable) -> Callable:
        _backends[backend].ops[op] = _Implementation(function, constraints)
        return function

    return decorate


def list_backends() -> list[BackendStatus]:
    """Every backend in priority order, with why it is unavailable ("" when it is)."""
    return [
        BackendStatus(b.name, not b.unavailable_reason, b.unavailable_reason)
        for b in _backends.values()
    ]


def backends_for(op: str) -> list[str]:
    """The backends that implement `op`, in priority order (available here or not)."""
    return [b.name for b in _backends.values() if op in b.ops]


def backend_unavailable_reason(name: str) -> str:
    """Why backend `name` cannot run here ("" when it can): a dict lookup, which Dynamo traces."""
    _check_name(name)
    return _backends[name].unavailable_reason


def _forced() -> str | None:
    return getattr(_local, "forced", None)


def _check_name(name: str) -> None:
    if name not in _backends:
        raise UnknownBackendError(f"unknown backend {name!r}; known: {', '.join(PRIORITY)}")


@contextmanager
def use_backend(name: str) -> Iterator[None]:
    """Run every op in this block on `name` only; a call it cannot take raises."""
    _check_name(name)
    previous = _forced()
    _local.forced = name
    try:
        yield
    finally:
        _local.forced = previous


def last_backend() -> str | None:
    """The backend that ran this thread's most recent op."""
    return getattr(_local, "last", None)


@contextmanager
def backend_trace() -> Iterator[list[tuple[str, str]]]:
    """Collects (op, backend) for every op run in this thread inside the block."""
    trace: list[tuple[str, str]] = []
    traces = getattr(_local, "traces", [])
    _local.traces = [*traces, trace]
    try:
        yield trace
    finally:
        _local.traces = traces


def _reason_to_skip(backend: _Backend, op: str, args: Mapping[str, Any]) -> str | None:
    if backend.unavailable_reason:
        return f"unavailable ({backend.unavailable_reason})"
    implementation = backend.ops.get(op)
    if implementation is None:
        return f"does not implement {op}"
    return implementation.constraints.reject(args)


def dispatch(op: str, backend: str | None = None, **args: Any) -> Any:
    """Run `op` on `backend` if given (comfy-kitchen's `backend=` keyword), else on the first
    backend in priority order (or the one use_backend forces) that can take it."""
    if backend is not None:
        _check_name(backend)
    forced = backend or _forced()
    candidates = (forced,) if forced else PRIORITY
    reasons: dict[str, str] = {}
    for name in candidates:
        reason = _reason_to_skip(_backends[name], op, args)
        if reason is None:
            if logger.isEnabledFor(logging.DEBUG):
                skipped = "".join(f"; {b} skipped: {r}" for b, r in reasons.items())
                how = " (requested)" if forced else ""
                logger.debug("%s -> %s%s%s", op, name, how, skipped)
            result = _backends[name].ops[op].function(**args)
            _local.last = name
            for trace in getattr(_local, "traces", ()):
                trace.append((op, name))
            return result
        reasons[name] = reason
    logger.debug("%s: no backend can run it: %s", op, reasons)
    raise NoCapableBackendError(op, reasons)
