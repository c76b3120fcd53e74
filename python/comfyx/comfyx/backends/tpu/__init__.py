"""TPU backend (torch_xla): ComfyUI on an XLA device.

Where each TPU option takes effect:

- ``--tpu-enable`` / ``--tpu-disable``: backend selection (:mod:`comfyx.backends`).
- ``--tpu-compilation-cache``: :func:`install`, torch_xla's persistent cache under
  ``comfyx.paths.cache_dir()/xla`` (written on every PJRT client; the CPU client cannot
  read entries back, see :func:`persistent_cache_info`).
- ``--tpu-shape-padding``, ``--tpu-pad-multiple``, ``--tpu-warmup``, ``--tpu-warmup-steps``,
  ``--tpu-manual-warmup``, ``--tpu-debug-metrics``: :func:`sampling.run_sampling`.
- ``--tpu-sync-steps``, ``--tpu-autocast-bf16``: the ``KSAMPLER.sample`` wrapper.

Nothing here imports torch at module level: the CLI imports this package to parse
options, long before ComfyUI's ``main.py`` has set up the environment torch reads.
"""

from __future__ import annotations

import importlib.util
import logging
import os
import shutil
from pathlib import Path

from comfyx import paths
from comfyx.backends.tpu import settings
from comfyx.comfyui.hooks import after_import

__all__ = ["auto_problem", "backend_problem", "clear_cache", "describe", "install", "settings", "stats"]

log = logging.getLogger("comfyx.backends.tpu")

_state = {"installed": False, "cache_dir": None}


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


def install() -> None:
    """Set up the persistent cache now and the ComfyUI hooks for when its modules load."""
    from comfyx.backends.tpu import device, sampling

    if settings.current().compilation_cache:
        _initialize_persistent_cache()
    after_import("comfy.model_management", device.install_into)
    sampling.install()
    _state["installed"] = True


def persistent_cache_dir() -> Path:
    return paths.cache_dir() / "xla"


def _initialize_persistent_cache() -> None:
    import torch_xla.runtime as xr

    cache = persistent_cache_dir()
    cache.mkdir(parents=True, exist_ok=True)
    xr.initialize_cache(str(cache), readonly=False)
    _state["cache_dir"] = str(cache)
    if xr.device_type() == "CPU":
        log.warning("comfyx tpu: the persistent compilation cache (%s) is written, but torch_xla's CPU "
                    "client cannot load entries back; programs compile again in each process", cache)


def persistent_cache_info() -> dict:
    cache = persistent_cache_dir()
    files = [f for f in cache.rglob("*") if f.is_file()] if cache.is_dir() else []
    return {
        "enabled": _state["cache_dir"] is not None,
        "dir": str(cache),
        "entries": len(files),
        "bytes": sum(f.stat().st_size for f in files),
        "note": "the PJRT CPU client writes entries but cannot deserialize them; only TPU clients reuse them",
    }


def stats() -> dict:
    """Compilations and executions (torch_xla's metrics), signatures, and the persistent cache."""
    if not _state["installed"]:
        return {"active": False, "reason": "the TPU backend is not running in this process"}
    import torch_xla.debug.metrics as met

    from comfyx.backends.tpu.registry import xla_compiles
    from comfyx.backends.tpu.sampling import REGISTRY

    compiles, compile_s = xla_compiles()
    executions = met.metric_data("ExecuteTime")
    signatures = REGISTRY.snapshot()
    return {
        "active": True,
        "device": describe(),
        "compiles": compiles,
        "compile_seconds": round(compile_s, 3),
        "executions": int(executions[0]) if executions else 0,
        "hits": sum(s["hits"] for s in signatures),
        "misses": sum(s["misses"] for s in signatures),
        "signatures": signatures,
        "persistent_cache": persistent_cache_info(),
    }


def clear_cache() -> dict:
    """Forget the signatures and delete the persistent cache's files.

    Programs already compiled in this process stay in torch_xla's in-memory cache (it
    has no public way to drop them); a signature seen again counts as new and warms up.
    """
    from comfyx.backends.tpu.sampling import REGISTRY

    REGISTRY.clear()
    cache = persistent_cache_dir()
    removed = 0
    if cache.is_dir():
        for entry in cache.iterdir():
            if entry.is_dir():
                shutil.rmtree(entry)
            else:
                entry.unlink()
            removed += 1
    return {"signatures_cleared": True, "persistent_cache_entries_removed": removed}
