"""``comfyx comfyui install``."""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from comfyx import PINNED_COMFYUI_REPO, PINNED_COMFYUI_VERSION
from comfyx.cli.common import EXIT_ERROR, say
from comfyx.comfyui.install import InstallError, install_comfyui
from comfyx.paths import from_args


def install(args: argparse.Namespace) -> int:
    target = Path(args.directory) if args.directory else from_args(args, os.environ).default_comfyui_dir
    try:
        path = install_comfyui(target, repo=args.repo or PINNED_COMFYUI_REPO, requirements=not args.no_requirements)
    except InstallError as err:
        say(f"error: {err}")
        return EXIT_ERROR
    say(f"ComfyUI v{PINNED_COMFYUI_VERSION} is at {path}; start it with `comfyx serve --comfyui {path}`")
    return 0
