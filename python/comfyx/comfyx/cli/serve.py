"""``comfyx serve``: ComfyUI's server, started through comfyx."""

from __future__ import annotations

import argparse
import errno

from comfyx.cli.common import EXIT_USAGE, STARTUP_ERRORS, prepare_comfyui, say
from comfyx.comfyui import launch
from comfyx.settings.tree import Settings


def serve(args: argparse.Namespace, settings: Settings) -> int:
    try:
        checkout = prepare_comfyui(args, args.comfyui_args, settings)
        launch.run_main(checkout)
    except STARTUP_ERRORS as err:
        say(f"error: {err}")
        return EXIT_USAGE
    except OSError as err:
        if err.errno != errno.EADDRINUSE:
            raise
        # ComfyUI lets aiohttp's bind error end main.py with a traceback
        say(f"error: ComfyUI cannot listen: {err.strerror or err} (another server has the port? choose another: "
            "comfyx serve -- --port N)")
        return EXIT_USAGE
    return 0
