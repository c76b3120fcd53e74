"""``comfyx serve``: ComfyUI's server, started through comfyx."""

from __future__ import annotations

import argparse
import os

from comfyx import hardening
from comfyx.cli.common import EXIT_USAGE, STARTUP_ERRORS, prepare_comfyui, say
from comfyx.comfyui import launch


def serve(args: argparse.Namespace) -> int:
    try:
        settings = hardening.from_args(args, os.environ)
        checkout = prepare_comfyui(args, args.comfyui_args, hardening=settings)
        launch.run_main(checkout)
    except STARTUP_ERRORS as err:
        say(f"error: {err}")
        return EXIT_USAGE
    return 0
