"""Compilation signatures: which sampling setups have run, and whether each run compiled.

A signature is keyed like the fork's (model, normalized input shape, batch, cfg,
sampler, schedule, steps, dtype), but whether a run was a hit or a miss is read from
torch_xla's own ``CompileTime`` metric around the run, not inferred from the key: a run
that made XLA compile anything is a miss, whatever comfyx believed about its shape.
"""

from __future__ import annotations

import threading
import time
from dataclasses import asdict, dataclass
from typing import Self


@dataclass(frozen=True)
class Signature:
    model: str
    shape: tuple[int, ...]  # the latent shape XLA sees (after padding), batch included
    cfg: float
    sampler: str
    schedule: str  # a digest of the sigmas: the scheduler and denoise as the graph sees them
    steps: int
    dtype: str

    @property
    def batch(self) -> int:
        return self.shape[0]

    def describe(self) -> dict:
        return asdict(self) | {"batch": self.batch}


@dataclass
class SignatureStats:
    runs: int = 0
    hits: int = 0
    misses: int = 0
    compiles: int = 0
    compile_seconds: float = 0.0
    warmed_up: bool = False
    last_step_seconds: float | None = None  # from the last run that compiled nothing


def xla_compiles() -> tuple[int, float]:
    """(compilations so far, seconds spent compiling) from torch_xla's metrics."""
    import torch_xla.debug.metrics as met

    data = met.metric_data("CompileTime")
    if data is None:
        return 0, 0.0
    count, total_ns, _samples = data
    return int(count), total_ns / 1e9


class Registry:
    """Thread-safe record of signatures; ComfyUI runs prompts on one worker thread."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._stats: dict[Signature, SignatureStats] = {}

    def seen(self, signature: Signature) -> bool:
        with self._lock:
            return signature in self._stats

    def measure(self, signature: Signature, *, warmup: bool = False) -> _Measurement:
        """Context manager: records one run of ``signature`` with the compilations it caused."""
        return _Measurement(self, signature, warmup)

    def _record(self, signature: Signature, warmup: bool, compiles: int, compile_s: float, run_s: float,
                steps: int) -> None:
        with self._lock:
            stats = self._stats.setdefault(signature, SignatureStats())
            if warmup:
                stats.warmed_up = True
            else:
                stats.runs += 1
                if compiles:
                    stats.misses += 1
                else:
                    stats.hits += 1
                    stats.last_step_seconds = run_s / max(steps, 1)
            stats.compiles += compiles
            stats.compile_seconds += compile_s

    def snapshot(self) -> list[dict]:
        with self._lock:
            return [sig.describe() | asdict(stats) for sig, stats in self._stats.items()]

    def clear(self) -> None:
        with self._lock:
            self._stats.clear()


class _Measurement:
    def __init__(self, registry: Registry, signature: Signature, warmup: bool) -> None:
        self._registry, self._signature, self._warmup = registry, signature, warmup

    def __enter__(self) -> Self:
        self._compiles, self._compile_s = xla_compiles()
        self._start = time.perf_counter()
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is not None:
            return
        run_s = time.perf_counter() - self._start
        compiles, compile_s = xla_compiles()
        self._registry._record(self._signature, self._warmup, compiles - self._compiles,
                               compile_s - self._compile_s, run_s, self._signature.steps)
