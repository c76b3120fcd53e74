"""``comfyx serve`` as a hardened ComfyUI: what a request or a signal can do to the server is bounded.

Installed before ComfyUI's ``main.py`` runs (:func:`install`); the changes are made by hooks
when ComfyUI imports its modules, all through one :class:`~comfyx.comfyui.patching.Patches`:

- the prompt worker survives any exception a prompt raises outside its nodes (:mod:`.worker`);
- ``POST /prompt`` bodies are checked before queueing, ``/upload`` and ``/view`` parameters
  too (:mod:`.gate`, :mod:`.intake`, :mod:`.files`); other sites' pages are refused unless CORS
  is configured (:mod:`.origin`);
- graph validation is iterative and names cycles and bad links (:mod:`.validation`);
- output files are written atomically (:mod:`.atomic`);
- SIGTERM/SIGINT stop the server in order, within a bounded time (:mod:`.shutdown`);
- the history is bounded and persists across restarts; deleting the running prompt
  interrupts it; a reused ``prompt_id`` is refused (:mod:`.queue`, :mod:`.history`).

``--no-hardening`` (``COMFYX_HARDENING=0``) installs none of it.
"""

from __future__ import annotations

from pathlib import Path
from types import ModuleType
from typing import Any

from comfyx.comfyui.hooks import after_import
from comfyx.comfyui.patching import Patches
from comfyx.hardening.settings import HardeningSettings

__all__ = ["HardeningSettings", "install"]

SERVER_INIT_SIGNATURE = "(self, loop)"
EXECUTOR_INIT_SIGNATURE = "(self, server, cache_type=False, cache_size=None)"


def install(settings: HardeningSettings) -> Patches:
    """Register the hooks that harden ComfyUI as it starts; returns the record of what they replace."""
    patches = Patches()
    if not settings.enabled:
        return patches
    after_import("server", lambda server: _harden_server(server, settings, patches))
    after_import("PIL.Image", lambda image: _atomic_images(image, patches))
    after_import("comfy.utils", lambda utils: _atomic_torch_files(utils, patches))
    after_import("av", lambda av: _atomic_videos(av, patches))
    return patches


def _harden_server(server: ModuleType, settings: HardeningSettings, patches: Patches) -> None:
    import execution
    import folder_paths

    from comfyx.hardening import origin, queue, validation, worker
    from comfyx.hardening.gate import Gate
    from comfyx.hardening.history import FILE_NAME, HistoryStore, open_store
    from comfyx.hardening.shutdown import Shutdown

    patches.replace(execution, "validate_inputs", validation.iterative(execution.validate_inputs),
                    validation.SIGNATURE)
    worker.check_execute(execution.PromptExecutor)
    patches.replace(execution, "PromptExecutor", worker.guarded(execution.PromptExecutor), EXECUTOR_INIT_SIGNATURE)

    def store() -> HistoryStore | None:  # in ComfyUI's user directory, next to its own database
        if not settings.persist_history:
            return None
        return open_store(Path(folder_paths.get_user_directory()) / FILE_NAME, settings.history_size)

    patches.replace(execution, "PromptQueue", queue.queue_class(execution.PromptQueue, settings.history_size, store),
                    queue.INIT_SIGNATURE)
    patches.replace(server, "create_origin_only_middleware",
                    origin.refusing_factory(server.create_origin_only_middleware), origin.FACTORY_SIGNATURE)
    stock_init = server.PromptServer.__init__

    def __init__(self: Any, loop: Any) -> None:
        stock_init(self, loop)
        gate = Gate(settings, self.prompt_queue)
        self.app.middlewares.append(gate.middleware)  # innermost: after ComfyUI's origin and CORS checks
        Shutdown(gate, self.prompt_queue, settings.shutdown_timeout).install(loop)

    patches.replace(server.PromptServer, "__init__", __init__, SERVER_INIT_SIGNATURE)


def _atomic_images(image: ModuleType, patches: Patches) -> None:
    from comfyx.hardening import atomic

    patches.replace(image.Image, "save", atomic.atomic_image_save(image.Image.save, image.registered_extensions),
                    atomic.IMAGE_SAVE_SIGNATURE)


def _atomic_torch_files(utils: ModuleType, patches: Patches) -> None:
    from comfyx.hardening import atomic

    patches.replace(utils, "save_torch_file", atomic.atomic_save_torch_file(utils.save_torch_file),
                    atomic.SAVE_TORCH_FILE_SIGNATURE)


def _atomic_videos(av: ModuleType, patches: Patches) -> None:
    from comfyx.hardening import atomic

    # No signature check: av.open is compiled (Cython) and has none to read; it is PyAV's, not ComfyUI's.
    patches.replace(av, "open", atomic.atomic_av_open(av.open))
