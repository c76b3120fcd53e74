"""Run ComfyUI's own ``main.py`` in this process, with comfyx's hooks installed.

Running ``main.py`` itself (rather than re-implementing its start-up) keeps every
ComfyUI flag meaning exactly what it means with ``python main.py``.
"""

from __future__ import annotations

import logging
import runpy
import sys
from collections.abc import Sequence
from types import ModuleType

from comfyx import backends, engine, fastpath
from comfyx import hardening as hardening_hooks
from comfyx.comfyui.hooks import after_import
from comfyx.comfyui.locate import ComfyUICheckout

log = logging.getLogger(__name__)


def prepare(
    checkout: ComfyUICheckout,
    comfyui_args: Sequence[str],
    *,
    engine_name: str,
    backend: str,
    fast_path: fastpath.FastPathSettings,
    hardening: hardening_hooks.HardeningSettings,
) -> None:
    """Set up this process as ``python main.py ARGS`` would see it, plus comfyx's hooks.

    Raises EngineUnavailableError / BackendUnavailableError before anything of
    ComfyUI is imported, so a wrong choice fails fast and clearly.
    """
    args = backends.comfyui_args(backend, list(comfyui_args))
    engine.install(engine_name)
    backends.install(backend)
    fastpath.install(fast_path)
    hardening_hooks.install(hardening)
    after_import("folder_paths", _add_comfyx_nodes)
    sys.argv = [str(checkout.main_py), *args]
    sys.path.insert(0, str(checkout.path))


def run_main(checkout: ComfyUICheckout) -> None:
    """Execute ComfyUI's ``main.py`` as ``__main__``; returns when the server stops."""
    runpy.run_path(str(checkout.main_py), run_name="__main__")


def _add_comfyx_nodes(folder_paths: ModuleType) -> None:
    from comfyx.nodes import COMFYUI_ENTRY_DIR

    folder_paths.add_model_folder_path("custom_nodes", str(COMFYUI_ENTRY_DIR))
