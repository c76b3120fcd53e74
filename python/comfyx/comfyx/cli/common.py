"""Pieces the ``serve`` and ``run`` commands share: messages and finding/launching ComfyUI."""

from __future__ import annotations

import argparse
import sys

from comfyx.backends import BackendUnavailableError
from comfyx.comfyui import ComfyUICheckout, ComfyUINotFoundError, find_comfyui, launch
from comfyx.comfyui.patching import IncompatibleComfyUIError
from comfyx.engine import EngineUnavailableError
from comfyx.fastpath import FastPathSettings, FastPathUnavailableError
from comfyx.settings.spec import SettingsError
from comfyx.settings.tree import Settings

EXIT_ERROR = 1
EXIT_USAGE = 2
EXIT_INTERRUPTED = 130

# Errors that mean "this cannot start as asked": reported in one line, exit 2.
STARTUP_ERRORS = (ComfyUINotFoundError, EngineUnavailableError, SettingsError, BackendUnavailableError,
                  FastPathUnavailableError, IncompatibleComfyUIError)


def say(message: str) -> None:
    print(f"comfyx: {message}", file=sys.stderr, flush=True)


def prepare_comfyui(args: argparse.Namespace, comfyui_args: list[str], settings: Settings) -> ComfyUICheckout:
    """Find ComfyUI, warn if it is not the pinned release, and set up the process to run it with ``settings``."""
    checkout = find_comfyui(args.comfyui, settings.paths.default_comfyui_dir)
    warning = checkout.pin_warning()
    if warning:
        say(f"warning: {warning}")
    if settings.fast != FastPathSettings():
        say(f"fast path: {settings.fast.describe()}")
    launch.prepare(checkout, comfyui_args, settings)
    return checkout
