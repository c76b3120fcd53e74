"""TPU backend (torch_xla): ComfyUI on an XLA device.

Where each TPU option (:class:`~.settings.TPUSettings`) takes effect:

- ``--tpu-enable`` / ``--tpu-disable``: backend selection (:mod:`comfyx.backends`).
- ``--tpu-compilation-cache``: :meth:`TPUBackend.install`, torch_xla's persistent cache under
  the cache directory's ``xla/`` (written on every PJRT client; the CPU client cannot read
  entries back, see :meth:`TPUBackend.persistent_cache_info`).
- ``--tpu-shape-padding``, ``--tpu-pad-multiple``, ``--tpu-warmup``, ``--tpu-warmup-steps``,
  ``--tpu-manual-warmup``, ``--tpu-debug-metrics``: :func:`sampling.run_sampling`.
- ``--tpu-sync-steps``, ``--tpu-autocast-bf16``: the ``KSAMPLER.sample`` wrapper.

The settings travel in one :class:`TPUBackend`, made at start-up whatever the backend: the
selection installs it when it picks the TPU, and the TPU nodes report on it.

Nothing here imports torch at module level: the CLI imports this package to parse
options, long before ComfyUI's ``main.py`` has set up the environment torch reads.
"""

from __future__ import annotations

import importlib.util
import logging
import os
import shutil
from pathlib import Path

from comfyx.backends.tpu.registry import Registry
from comfyx.backends.tpu.settings import TPUSettings
from comfyx.comfyui.hooks import after_import

__all__ = ["TPUBackend", "auto_problem", "backend_problem", "describe"]

log = logging.getLogger("comfyx.backends.tpu")


def backend_problem() -> str | None:
    """Why ``--backend tpu`` cannot run here, or None."""
    if importlib.util.find_spec("torch_xla") is None:
        return "torch_xla is not installed (pip install torch==2.9.0 torch_xla==2.9.0)"
    try:
        import torch_xla.runtime as xr

        xr.device_type()
        import torch_xla

        torch_xla.device()
    except Exception as err:  # noqa: BLE001 - torch_xla raises many kinds of errors when no runtime is configured
        return f"torch_xla could not start a runtime: {type(err).__name__}: {err}"
    return None


def auto_problem() -> str | None:
    """Why ``--backend auto`` should not pick the TPU, or None.

    torch_xla falls back to its CPU client when no TPU is found; that is slower than
    plain torch on the CPU, so auto takes it only when ``PJRT_DEVICE`` asks for it.
    """
    if importlib.util.find_spec("torch_xla") is None:
        return "torch_xla is not installed"
    requested = os.environ.get("PJRT_DEVICE")  # read first: torch_xla sets it when it falls back to CPU
    problem = backend_problem()
    if problem:
        return problem
    import torch_xla.runtime as xr

    if xr.device_type() != "TPU" and not requested:
        return f"torch_xla found no TPU (its runtime would be {xr.device_type()}; set PJRT_DEVICE to use it anyway)"
    return None


def describe() -> str:
    import torch_xla
    import torch_xla.runtime as xr

    return f"XLA device {torch_xla.device()} (PJRT {xr.device_type()}, torch_xla {torch_xla.__version__})"


class TPUBackend:
    """The TPU backend of this process: its settings, its signature registry, its persistent cache.

    ``active`` once :meth:`install` has run (the selection picked the TPU).
    """

    def __init__(self, settings: TPUSettings, cache_dir: Path):
        self.settings = settings
        self.cache_dir = cache_dir  # torch_xla's persistent compilation cache
        self.registry = Registry()
        self.active = False
        self.cache_enabled = False

    def install(self) -> None:
        """Set up the persistent cache now and the ComfyUI hooks for when its modules load."""
        from comfyx.backends.tpu import device, sampling

        if self.settings.compilation_cache:
            self._initialize_persistent_cache()
        after_import("comfy.model_management", device.install_into)
        sampling.install(self)
        self.active = True

    def _initialize_persistent_cache(self) -> None:
        import torch_xla.runtime as xr

        self.cache_dir.mkdir(parents=True, exist_ok=True)
        xr.initialize_cache(str(self.cache_dir), readonly=False)
        self.cache_enabled = True
        if xr.device_type() == "CPU":
            log.warning("comfyx tpu: the persistent compilation cache (%s) is written, but torch_xla's CPU "
                        "client cannot load entries back; programs compile again in each process", self.cache_dir)

    def persistent_cache_info(self) -> dict:
        files = [f for f in self.cache_dir.rglob("*") if f.is_file()] if self.cache_dir.is_dir() else []
        return {
            "enabled": self.cache_enabled,
            "dir": str(self.cache_dir),
            "entries": len(files),
            "bytes": sum(f.stat().st_size for f in files),
            "note": "the PJRT CPU client writes entries but cannot deserialize them; only TPU clients reuse them",
        }

    def stats(self) -> dict:
        """Compilations and executions (torch_xla's metrics), signatures, and the persistent cache."""
        if not self.active:
            return {"active": False, "reason": "the TPU backend is not running in this process"}
        import torch_xla.debug.metrics as met

        from comfyx.backends.tpu.registry import xla_compiles

        compiles, compile_s = xla_compiles()
        executions = met.metric_data("ExecuteTime")
        signatures = self.registry.snapshot()
        return {
            "active": True,
            "device": describe(),
            "compiles": compiles,
            "compile_seconds": round(compile_s, 3),
            "executions": int(executions[0]) if executions else 0,
            "hits": sum(s["hits"] for s in signatures),
            "misses": sum(s["misses"] for s in signatures),
            "signatures": signatures,
            "persistent_cache": self.persistent_cache_info(),
        }

    def clear_cache(self) -> dict:
        """Forget the signatures and delete the persistent cache's files.

        Programs already compiled in this process stay in torch_xla's in-memory cache (it
        has no public way to drop them); a signature seen again counts as new and warms up.
        """
        self.registry.clear()
        removed = 0
        if self.cache_dir.is_dir():
            for entry in self.cache_dir.iterdir():
                if entry.is_dir():
                    shutil.rmtree(entry)
                else:
                    entry.unlink()
                removed += 1
        return {"signatures_cleared": True, "persistent_cache_entries_removed": removed}
