"""Pieces the ``serve`` and ``run`` commands share: messages and finding/launching ComfyUI."""

from __future__ import annotations

import argparse
import sys

from comfyx import fastpath
from comfyx.backends import BackendUnavailableError
from comfyx.comfyui import ComfyUICheckout, ComfyUINotFoundError, find_comfyui, launch
from comfyx.engine import EngineUnavailableError, resolve
from comfyx.engine.settings import EngineSettingsError
from comfyx.hardening import HardeningSettings, SettingsError

EXIT_ERROR = 1
EXIT_USAGE = 2
EXIT_INTERRUPTED = 130

# Errors that mean "this cannot start as asked": reported in one line, exit 2.
STARTUP_ERRORS = (ComfyUINotFoundError, EngineUnavailableError, EngineSettingsError, SettingsError,
                  BackendUnavailableError)


def say(message: str) -> None:
    print(f"comfyx: {message}", file=sys.stderr, flush=True)


def prepare_comfyui(args: argparse.Namespace, comfyui_args: list[str], *,
                    hardening: HardeningSettings) -> ComfyUICheckout:
    """Find ComfyUI, warn if it is not the pinned release, and set up the process to run it."""
    checkout = find_comfyui(args.comfyui)
    warning = checkout.pin_warning()
    if warning:
        say(f"warning: {warning}")
    engine_name, fallback_reason = resolve(args.engine)
    if fallback_reason is not None:
        say(f"warning: the BMF engine cannot run here ({fallback_reason}); prompts run on ComfyUI's stock "
            "executor (`comfyx doctor` reports the engines; --engine stock chooses it explicitly)")
    if args.kernels_off_reason is not None:
        say(f"warning: comfyx's kernels are off ({args.kernels_off_reason}); fp8 checkpoints and Flux RoPE run as "
            "ComfyUI runs them (`comfyx doctor` says what can run)")
    if args.fast_path != fastpath.FastPathSettings():
        say(f"fast path: {args.fast_path.describe()}")
    launch.prepare(checkout, comfyui_args, engine_name=engine_name, backend=args.backend, fast_path=args.fast_path,
                   hardening=hardening)
    return checkout
