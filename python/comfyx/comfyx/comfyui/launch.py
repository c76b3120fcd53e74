"""Run ComfyUI's own ``main.py`` in this process, with comfyx's hooks installed.

Running ``main.py`` itself (rather than re-implementing its start-up) keeps every
ComfyUI flag meaning exactly what it means with ``python main.py``.
"""

from __future__ import annotations

import os
import runpy
import sys
from collections.abc import Sequence

from comfyx import backends, engine, fastpath, hardening, nodes
from comfyx.backends.tpu import TPUBackend
from comfyx.comfyui.locate import ComfyUICheckout
from comfyx.paths import export_compile_caches
from comfyx.settings.tree import Settings


def prepare(checkout: ComfyUICheckout, comfyui_args: Sequence[str], settings: Settings) -> None:
    """Set up this process as ``python main.py ARGS`` would see it, plus comfyx's hooks, each given its
    part of ``settings``.

    Raises BackendUnavailableError / EngineUnavailableError before anything of ComfyUI is
    imported, so a wrong choice fails fast and clearly.
    """
    args = fastpath.comfyui_args(settings.fast, backends.comfyui_args(settings.backend.name, list(comfyui_args)))
    export_compile_caches(settings.compile_caches, os.environ)  # before torch: it reads them itself
    engine.install(settings.engine)  # starts the BMF workers: a start-up error if they cannot
    tpu_backend = TPUBackend(settings.tpu, settings.paths.xla_cache)
    backends.install(settings.backend, settings.intel, tpu_backend)
    fastpath.install(settings.fast, settings.compile_caches, settings.paths.calibration)
    hardening.install(settings.hardening)
    nodes.install(settings, tpu_backend)
    sys.argv = [str(checkout.main_py), *args]
    sys.path.insert(0, str(checkout.path))


def run_main(checkout: ComfyUICheckout) -> None:
    """Execute ComfyUI's ``main.py`` as ``__main__``; returns when the server stops."""
    runpy.run_path(str(checkout.main_py), run_name="__main__")
