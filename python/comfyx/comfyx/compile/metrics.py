"""What a compile cost and what it bought, measured on the model calls themselves.

A "step" is one call of the model (one sampling step, the cfg pair batched). Steps that
compiled are timed on the host after a device sync (their time is mostly compiling);
the others are timed with device events, so measuring adds no sync to steady state.
Compile counts and cache hits come from torch's own counters.
"""

from __future__ import annotations

import contextlib
import logging
import statistics
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any, Self

import torch
from torch._dynamo.utils import counters, get_compilation_metrics

# (counter group, counter name) -> our name
_COUNTERS = {
    ("frames", "ok"): "frames_compiled",
    ("stats", "unique_graphs"): "graphs",
    ("inductor", "fxgraph_cache_hit"): "fx_cache_hits",
    ("inductor", "fxgraph_cache_miss"): "fx_cache_misses",
    ("aot_autograd", "autograd_cache_hit"): "aot_cache_hits",
    ("aot_autograd", "autograd_cache_miss"): "aot_cache_misses",
    ("aot_autograd", "autograd_cache_bypass"): "aot_cache_bypasses",
    ("aot_autograd", "autograd_cache_saved"): "aot_cache_saves",
    # compiled graphs that asked for CUDA graphs (reduce-overhead) and run without them
    ("inductor", "cudagraph_skips"): "cuda_graph_skips",
}


_MAX_REASONS = 16
_AOT_CACHE_LOGGER = "torch._functorch._aot_autograd.autograd_cache"
_BYPASS_PREFIX = "Bypassing autograd cache due to: "


class _BypassCollector(logging.Handler):
    def __init__(self, into: list[str]):
        super().__init__(logging.INFO)
        self._into = into

    def emit(self, record: logging.LogRecord) -> None:
        message = record.getMessage()
        if message.startswith(_BYPASS_PREFIX) and len(self._into) < 8:
            self._into.append(message.removeprefix(_BYPASS_PREFIX)[:500])


@contextlib.contextmanager
def aot_cache_bypass_reasons(into: list[str]) -> Iterator[None]:
    """Collect why AOTAutograd's cache skipped a graph (a warm start then retraces it).

    torch logs the reason at INFO only, below its loggers' default level.
    """
    logger = logging.getLogger(_AOT_CACHE_LOGGER)
    handler, level = _BypassCollector(into), logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    try:
        yield
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)


def newest_compile_record() -> Any:
    """Dynamo's newest per-frame compile record (None before any): the mark from which
    :func:`recompile_reasons_since` finds the records a call added."""
    records = get_compilation_metrics()
    return records[-1] if records else None


def compile_records_since(mark: Any) -> list[Any]:
    """Dynamo's per-frame compile records (``CompilationMetrics``) added since ``mark``; all it
    keeps (its last 64) if ``mark`` is None or no longer among them."""
    records = get_compilation_metrics()
    start = next((i + 1 for i in range(len(records) - 1, -1, -1) if records[i] is mark), 0)
    return records[start:]


def recompile_reasons_since(mark: Any) -> list[str]:
    """Why dynamo recompiled since ``mark``: the first failed guard of each frame it compiled again."""
    return [reason for record in compile_records_since(mark) if (reason := getattr(record, "recompile_reason", None))]


# Dynamo's per-frame times (microseconds); the latter three are parts of the first
_PHASES = {
    "dynamo_cumulative_compile_time_us": "compiling",
    "aot_autograd_cumulative_compile_time_us": "aot_autograd",
    "inductor_cumulative_compile_time_us": "inductor",
    "triton_compile_time_us": "triton",
}


def compile_seconds(records: list[Any]) -> dict[str, float]:
    """Seconds dynamo spent compiling the frames of ``records`` (:func:`compile_records_since`): ``compiling`` in
    all (tracing, guards, backend), and of that ``aot_autograd``, ``inductor`` and ``triton``. A warm start's
    compiling is mostly tracing and loading cached graphs; what the step took besides is running it."""
    return {ours: sum(getattr(record, field, None) or 0 for record in records) / 1e6 for field, ours in _PHASES.items()}


def counter_snapshot() -> dict[str, int]:
    return {ours: int(counters[group][name]) for (group, name), ours in _COUNTERS.items()}


def counter_delta(before: dict[str, int]) -> dict[str, int]:
    now = counter_snapshot()
    return {name: now[name] - before[name] for name in now}


class _EventTimer:
    """Times a region on the device without syncing; read later."""

    def __init__(self, device: torch.device):
        self._device = device
        self._start = torch.cuda.Event(enable_timing=True)
        self._end = torch.cuda.Event(enable_timing=True)

    def __enter__(self) -> Self:
        self._start.record(torch.cuda.current_stream(self._device))
        return self

    def __exit__(self, *exc: object) -> None:
        self._end.record(torch.cuda.current_stream(self._device))

    def seconds(self) -> float:
        self._end.synchronize()
        return self._start.elapsed_time(self._end) / 1000.0


@dataclass
class CompileMetrics:
    """Per compiled model (one model + compile plan)."""

    label: str
    first_step_s: float | None = None
    warmup_runs_done: int = 0
    compiling_steps: list[tuple[str, float, int]] = field(default_factory=list)  # (shape, s, frames)
    totals: dict[str, int] = field(default_factory=lambda: dict.fromkeys(_COUNTERS.values(), 0))
    first_step_counts: dict[str, int] = field(default_factory=dict)
    first_step_compile_s: dict[str, float] = field(default_factory=dict)  # compile_seconds of the first step
    artifacts_loaded: int = 0
    artifacts_saved: int = 0
    traces_loaded: int = 0  # Dynamo's traces loaded from comfyx.compile.traces instead of traced again
    traces_saved: int = 0
    fingerprints_taken: int = 0  # of compiled modules, for saved traces: once per module and load state
    triton_kernels_cached: int | None = None
    aot_cache_bypass_reasons: list[str] = field(default_factory=list)
    # dynamo's recompilations: a frame it had compiled compiled again (a new shape, a failed
    # guard); a frame compiled for the first time is not one
    recompiles: int = 0
    recompile_reasons: list[str] = field(default_factory=list)  # the first few, as dynamo gives them
    _steady: dict[str, list[float]] = field(default_factory=dict)  # shape -> step seconds
    _pending: list[tuple[str, _EventTimer]] = field(default_factory=list)

    def add_counts(self, delta: dict[str, int]) -> None:
        for name, value in delta.items():
            self.totals[name] += value

    def add_recompile_reasons(self, reasons: list[str]) -> None:
        """Dynamo's recompilations, one reason each (:func:`recompile_reasons_since`)."""
        self.recompiles += len(reasons)
        room = _MAX_REASONS - len(self.recompile_reasons)
        self.recompile_reasons.extend(reason[:500] for reason in reasons[: max(room, 0)])

    @property
    def caches_warm(self) -> bool:
        """The first compile found its graphs in the caches (none had to be built): saved traces, or inductor's."""
        if self.traces_loaded or self.traces_saved:
            return self.traces_saved == 0
        counts = self.first_step_counts
        return counts.get("fx_cache_hits", 0) > 0 and counts.get("fx_cache_misses", 0) == 0

    def record_steady(self, shape: str, timer: _EventTimer | None, host_seconds: float) -> None:
        # device events are read later, so that timing adds no sync to the sampling loop
        if timer is None:
            self._steady.setdefault(shape, []).append(host_seconds)
        else:
            self._pending.append((shape, timer))

    def steady_step_times(self) -> dict[str, list[float]]:
        """Step times (s) of the steps that did not compile, by input shape."""
        for shape, timer in self._pending:
            self._steady.setdefault(shape, []).append(timer.seconds())
        self._pending.clear()
        return {shape: list(times) for shape, times in self._steady.items()}

    def summary(self) -> dict[str, Any]:
        by_shape = {shape: statistics.median(times) * 1000 for shape, times in self.steady_step_times().items()}
        first_shape = self.compiling_steps[0][0] if self.compiling_steps else None
        return {
            "model": self.label,
            "first_step_s": self.first_step_s,
            "first_step_compile_s": dict(self.first_step_compile_s),
            "warmup_runs": self.warmup_runs_done,
            # at the first shape compiled: the workflow's own resolution
            "steady_step_ms": by_shape.get(first_shape),
            "steady_step_ms_by_shape": by_shape,
            "steady_steps": sum(len(times) for times in self._steady.values()),
            "recompiles": self.recompiles,
            "compiling_steps": [{"shape": s, "seconds": t, "frames": f} for s, t, f in self.compiling_steps],
            "caches_warm": self.caches_warm,
            "artifacts_loaded": self.artifacts_loaded,
            "artifacts_saved": self.artifacts_saved,
            "traces_loaded": self.traces_loaded,
            "traces_saved": self.traces_saved,
            "fingerprints_taken": self.fingerprints_taken,
            "triton_kernels_cached": self.triton_kernels_cached,
            "aot_cache_bypass_reasons": list(self.aot_cache_bypass_reasons),
            "recompile_reasons": list(self.recompile_reasons),
            **self.totals,
        }

    def text(self) -> str:
        s = self.summary()
        steady = f"{s['steady_step_ms']:.2f} ms (median of {s['steady_steps']})" if s["steady_step_ms"] else "n/a"
        first = f"{s['first_step_s']:.2f} s" if s["first_step_s"] is not None else "n/a"
        return (
            f"{s['model']}: first step {first} ({'warm' if s['caches_warm'] else 'cold'} caches), "
            f"steady step {steady}, recompiles {s['recompiles']}, dynamo frames compiled "
            f"{s['frames_compiled']}, FX graph cache {s['fx_cache_hits']} hits / {s['fx_cache_misses']} misses, "
            f"AOTAutograd cache {s['aot_cache_hits']} hits / {s['aot_cache_misses']} misses / "
            f"{s['aot_cache_bypasses']} bypasses, "
            f"artifacts loaded {s['artifacts_loaded']} / saved {s['artifacts_saved']}, "
            f"traces loaded {s['traces_loaded']} / saved {s['traces_saved']}"
            + (f"; {s['cuda_graph_skips']} graph(s) run without CUDA graphs" if s["cuda_graph_skips"] else "")
            + (f"; first recompile: {s['recompile_reasons'][0]}" if s["recompile_reasons"] else "")
        )


def device_timer(device: torch.device) -> _EventTimer | None:
    """An event timer on CUDA devices; None elsewhere (callers time on the host)."""
    return _EventTimer(device) if device.type == "cuda" else None


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    elif device.type == "xpu":
        torch.xpu.synchronize(device)


class HostTimer:
    def __enter__(self) -> Self:
        self.start = time.perf_counter()
        return self

    def __exit__(self, *exc: object) -> None:
        self.seconds = time.perf_counter() - self.start
