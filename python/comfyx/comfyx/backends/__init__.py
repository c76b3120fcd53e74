"""Accelerator backends: which device ComfyUI runs on, and checks that it really can.

A named backend is a promise: if the hardware or the torch build cannot keep it,
start-up stops with a message saying why instead of silently running somewhere else.
``auto`` picks CUDA, then Intel XPU, then a TPU (torch_xla), then the CPU, and logs
what it picked and why.

The choice is made once ``torch`` is imported by ComfyUI's ``main.py`` (after it has set
the device environment variables and imported ``cuda_malloc``) and before
``comfy.model_management`` reads ``args.cpu``: the only moment both facts are known and
nothing is decided yet.
"""

from __future__ import annotations

import argparse
import importlib.util
import logging
import sys
from collections.abc import Callable
from pathlib import Path
from types import ModuleType

from comfyx.backends import intel, tpu
from comfyx.backends.probe import probe_accelerators
from comfyx.backends.settings import BACKENDS, BackendSettings, IntelSettings
from comfyx.comfyui.hooks import after_import

BACKENDS_DIR = Path(__file__).parent
# What --backend auto tries, in order: (backend, the accelerator it runs on); else the CPU.
AUTO_ORDER = (("cuda", "cuda"), ("ipex", "xpu"), ("tpu", "xla"))

__all__ = ["AUTO_ORDER", "BACKENDS", "BackendUnavailableError", "auto_pick", "comfyui_args", "install",
           "pip_constraints", "probe_accelerators"]

log = logging.getLogger("comfyx.backends")


class BackendUnavailableError(RuntimeError):
    """The requested backend cannot run here; the message says why."""


def auto_pick(problem_of: Callable[[str], str | None]) -> tuple[str, list[str]]:
    """The backend ``--backend auto`` picks, and why each accelerator tried before it was not taken.

    ``problem_of(accelerator)`` says why ``cuda``, ``xpu`` or ``xla`` cannot run (None: it can);
    it is asked in :data:`AUTO_ORDER` and no further than the first that can.
    """
    reasons = []
    for backend, accelerator in AUTO_ORDER:
        problem = problem_of(accelerator)
        if problem is None:
            return backend, reasons
        reasons.append(f"{accelerator}: {problem}")
    return "cpu", reasons


def comfyui_args(backend: str, args: list[str]) -> list[str]:
    """ComfyUI's command line for ``backend`` (one of :data:`BACKENDS`): the user's flags, plus what the backend
    needs."""
    # tpu runs ComfyUI in its CPU mode anyway, and ipex with --cpu means IPEX on the CPU
    if backend == "cuda" and "--cpu" in args:
        raise BackendUnavailableError("--backend cuda contradicts ComfyUI's --cpu flag")
    if backend == "cpu" and "--cpu" not in args:
        return ["--cpu", *args]
    if backend == "tpu" and "--use-pytorch-cross-attention" not in args:
        # One SDPA op per attention block; ComfyUI's CPU default (sub-quadratic attention)
        # chunks by free memory in Python, which XLA would trace as many shapes.
        return ["--use-pytorch-cross-attention", *args]
    return list(args)


def install(backend: BackendSettings, intel_settings: IntelSettings, tpu_backend: tpu.TPUBackend) -> None:
    """Register the hooks that select and set up ``backend`` while ComfyUI starts."""
    def after_cuda_malloc(_: ModuleType) -> None:
        cli_args = sys.modules["comfy.cli_args"]
        after_import("torch", lambda torch: _select(backend.name, cli_args.args, torch, intel_settings, tpu_backend))

    # main.py imports cuda_malloc after setting the device environment and right before torch.
    after_import("cuda_malloc", after_cuda_malloc)


def pip_constraints() -> list[Path]:
    """pip constraint files that keep this interpreter's torch_xla / IPEX working.

    Both need one exact torch, and ComfyUI's unpinned torchvision/torchaudio requirements
    would otherwise upgrade it (`comfyx comfyui install` passes these to pip).
    """
    pinned = {"torch_xla": "constraints-xla.txt", "intel_extension_for_pytorch": "constraints-ipex.txt"}
    return [BACKENDS_DIR / name for module, name in pinned.items() if importlib.util.find_spec(module) is not None]


def _select(backend: str, comfy_args: argparse.Namespace, torch: ModuleType, intel_settings: IntelSettings,
            tpu_backend: tpu.TPUBackend) -> None:
    """Decide the device before ``comfy.model_management`` is imported (it reads ``args.cpu``)."""
    chosen, why = _resolve(backend, comfy_args, torch, tpu_backend)
    log.info("comfyx backend %s: %s", chosen, why)
    if chosen in ("cpu", "tpu") or (chosen == "ipex" and not intel.xpu_available(torch)):
        comfy_args.cpu = True  # ComfyUI's own CPU mode; tpu and ipex-on-CPU build on it
    if chosen == "ipex":
        intel.install(torch, intel_settings)
    elif chosen == "tpu":
        tpu_backend.install()


def _resolve(backend: str, comfy_args: argparse.Namespace, torch: ModuleType,
             tpu_backend: tpu.TPUBackend) -> tuple[str, str]:
    if backend == "cpu" or (backend == "auto" and comfy_args.cpu):
        return "cpu", "requested"
    if backend == "cuda":
        if not torch.cuda.is_available():
            raise BackendUnavailableError(
                f"--backend cuda: torch {torch.__version__} sees no CUDA device "
                f"(built with CUDA {torch.version.cuda or 'none'})")
        return "cuda", torch.cuda.get_device_name(0)
    if backend == "ipex":
        problem = intel.backend_problem(torch, cpu=comfy_args.cpu)
        if problem:
            raise BackendUnavailableError(f"--backend ipex: {problem}")
        return "ipex", intel.describe(torch, cpu=comfy_args.cpu)
    if backend == "tpu":
        problem = tpu.backend_problem()
        if problem:
            raise BackendUnavailableError(f"--backend tpu: {problem}")
        return "tpu", tpu.describe()
    return _auto(torch, tpu_backend)


def _auto(torch: ModuleType, tpu_backend: tpu.TPUBackend) -> tuple[str, str]:
    def problem_of(accelerator: str) -> str | None:
        if accelerator == "cuda":
            return None if torch.cuda.is_available() else f"torch {torch.__version__} sees no CUDA device"
        if accelerator == "xpu":
            return None if intel.xpu_available(torch) else "no Intel XPU device"
        return "disabled by --tpu-disable" if tpu_backend.settings.enable is False else tpu.auto_problem()

    chosen, reasons = auto_pick(problem_of)
    described = {"cuda": lambda: f"CUDA device {torch.cuda.get_device_name(0)}", "ipex": lambda: intel.describe(torch),
                 "tpu": tpu.describe, "cpu": lambda: "no accelerator (" + "; ".join(reasons) + ")"}
    return chosen, described[chosen]()
