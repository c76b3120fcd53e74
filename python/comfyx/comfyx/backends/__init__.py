"""Accelerator backends: which one ComfyUI runs on, and checks that it really can.

``auto`` leaves the choice to ComfyUI (CUDA, then XPU, then CPU). A named backend is
a promise: if the hardware or the torch build cannot keep it, start-up stops with a
message saying why instead of silently running somewhere else.
"""

from __future__ import annotations

from types import ModuleType

from comfyx.backends.probe import probe_accelerators
from comfyx.comfyui.hooks import after_import

BACKENDS = ("auto", "cuda", "ipex", "tpu", "cpu")

__all__ = ["BACKENDS", "BackendUnavailableError", "comfyui_args", "install", "probe_accelerators"]


class BackendUnavailableError(RuntimeError):
    """The requested backend cannot run here; the message says why."""


def comfyui_args(backend: str, args: list[str]) -> list[str]:
    """ComfyUI's command line for ``backend``: the user's flags, plus what the backend needs."""
    if backend not in BACKENDS:
        raise BackendUnavailableError(f"unknown backend {backend!r}; choose one of {', '.join(BACKENDS)}")
    if backend == "tpu":
        raise BackendUnavailableError("the TPU (torch_xla) backend is not part of this comfyx build yet")
    if backend == "cpu" and "--cpu" not in args:
        return ["--cpu", *args]
    if backend in ("cuda", "ipex") and "--cpu" in args:
        raise BackendUnavailableError(f"--backend {backend} contradicts ComfyUI's --cpu flag")
    return list(args)


def install(backend: str) -> None:
    """Check, once ComfyUI has chosen its device, that it is the one ``backend`` asked for."""
    if backend in ("cuda", "ipex"):
        after_import("comfy.model_management", lambda mm: _check_device(mm, backend))


def _check_device(model_management: ModuleType, backend: str) -> None:
    import torch

    if backend == "cuda" and not torch.cuda.is_available():
        raise BackendUnavailableError(
            f"--backend cuda: torch {torch.__version__} sees no CUDA device "
            f"(built with CUDA {torch.version.cuda or 'none'})"
        )
    if backend == "ipex" and not (hasattr(torch, "xpu") and torch.xpu.is_available()):
        raise BackendUnavailableError(f"--backend ipex: torch {torch.__version__} sees no Intel XPU device")
