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
import os
import sys
from pathlib import Path
from types import ModuleType

from comfyx.backends import intel, intel_int8, tpu
from comfyx.backends.probe import probe_accelerators
from comfyx.comfyui.hooks import after_import

BACKENDS = ("auto", "cuda", "ipex", "tpu", "cpu")
BACKEND_ENV = "COMFYX_BACKEND"
BACKENDS_DIR = Path(__file__).parent

__all__ = [
    "BACKENDS", "BACKEND_ENV", "BackendUnavailableError", "add_arguments", "comfyui_args", "configure",
    "install", "pip_constraints", "probe_accelerators",
]

log = logging.getLogger("comfyx.backends")


class BackendUnavailableError(RuntimeError):
    """The requested backend cannot run here; the message says why."""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """``--backend`` (default ``$COMFYX_BACKEND`` or auto), ``--ipex-int8`` and the TPU options, all comfyx's own."""
    parser.add_argument(
        "--backend", choices=BACKENDS, default=os.environ.get(BACKEND_ENV) or "auto",
        help=f"accelerator backend; auto picks CUDA, then Intel XPU, then TPU, then CPU "
        f"(default: ${BACKEND_ENV} or auto)",
    )
    parser.add_argument(
        "--ipex-int8", action=argparse.BooleanOptionalAction, default=None,
        help="IPEX on a CPU with VNNI: quantize the diffusion model's Linear layers to int8 (dynamic "
        f"quantization; lossy); implies --backend ipex (default: ${intel_int8.INT8_ENV}=1, else off)",
    )
    tpu.settings.add_arguments(parser)


def configure(args: argparse.Namespace) -> str:
    """Apply the parsed backend options; returns the backend to launch with."""
    if args.backend not in BACKENDS:  # a bad $COMFYX_BACKEND bypasses argparse's choices
        raise BackendUnavailableError(f"unknown backend {args.backend!r}; choose one of {', '.join(BACKENDS)}")
    int8 = _ipex_int8(args)
    intel_int8.request(int8)
    settings = tpu.settings.from_args(args)
    tpu.settings.set_current(settings)
    if int8:
        if args.backend not in ("auto", "ipex") or settings.enable is True:
            raise BackendUnavailableError(
                f"--ipex-int8 (or {intel_int8.INT8_ENV}=1) needs --backend ipex, not "
                f"{'--tpu-enable' if settings.enable is True else '--backend ' + args.backend}")
        return "ipex"
    if settings.enable is True:
        if args.backend not in ("auto", "tpu"):
            raise BackendUnavailableError(f"--tpu-enable contradicts --backend {args.backend}")
        return "tpu"
    if settings.enable is False and args.backend == "tpu":
        raise BackendUnavailableError("--tpu-disable contradicts --backend tpu")
    return args.backend


def _ipex_int8(args: argparse.Namespace) -> bool:
    if args.ipex_int8 is not None:
        return args.ipex_int8
    try:
        return intel_int8.requested_by_env()
    except ValueError as err:
        raise BackendUnavailableError(str(err)) from None


def comfyui_args(backend: str, args: list[str]) -> list[str]:
    """ComfyUI's command line for ``backend``: the user's flags, plus what the backend needs."""
    if backend not in BACKENDS:
        raise BackendUnavailableError(f"unknown backend {backend!r}; choose one of {', '.join(BACKENDS)}")
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


def install(backend: str) -> None:
    """Register the hooks that select and set up ``backend`` while ComfyUI starts."""
    def after_cuda_malloc(_: ModuleType) -> None:
        cli_args = sys.modules["comfy.cli_args"]
        after_import("torch", lambda torch: _select(backend, cli_args.args, torch))

    # main.py imports cuda_malloc after setting the device environment and right before torch.
    after_import("cuda_malloc", after_cuda_malloc)


def pip_constraints() -> list[Path]:
    """pip constraint files that keep this interpreter's torch_xla / IPEX working.

    Both need one exact torch, and ComfyUI's unpinned torchvision/torchaudio requirements
    would otherwise upgrade it (`comfyx comfyui install` passes these to pip).
    """
    pinned = {"torch_xla": "constraints-xla.txt", "intel_extension_for_pytorch": "constraints-ipex.txt"}
    return [BACKENDS_DIR / name for module, name in pinned.items() if importlib.util.find_spec(module) is not None]


def _select(backend: str, comfy_args: argparse.Namespace, torch: ModuleType) -> None:
    """Decide the device before ``comfy.model_management`` is imported (it reads ``args.cpu``)."""
    chosen, why = _resolve(backend, comfy_args, torch)
    log.info("comfyx backend %s: %s", chosen, why)
    if chosen in ("cpu", "tpu") or (chosen == "ipex" and not intel.xpu_available(torch)):
        comfy_args.cpu = True  # ComfyUI's own CPU mode; tpu and ipex-on-CPU build on it
    if chosen == "ipex":
        intel.install(torch)
    elif chosen == "tpu":
        tpu.install()


def _resolve(backend: str, comfy_args: argparse.Namespace, torch: ModuleType) -> tuple[str, str]:
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
    return _auto(torch)


def _auto(torch: ModuleType) -> tuple[str, str]:
    if torch.cuda.is_available():
        return "cuda", f"CUDA device {torch.cuda.get_device_name(0)}"
    if intel.xpu_available(torch):
        return "ipex", intel.describe(torch)
    reasons = [f"cuda: torch {torch.__version__} sees no CUDA device", "xpu: no Intel XPU device"]
    if tpu.settings.current().enable is False:
        reasons.append("tpu: disabled by --tpu-disable")
    else:
        problem = tpu.auto_problem()
        if problem is None:
            return "tpu", tpu.describe()
        reasons.append(f"tpu: {problem}")
    return "cpu", "no accelerator (" + "; ".join(reasons) + ")"
