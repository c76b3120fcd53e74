"""The settings tree as ``comfyx serve ARGV`` would start with it, for tests (no ComfyUI needed)."""

from __future__ import annotations

from collections.abc import Mapping

from comfyx.cli.main import build_parser
from comfyx.settings.tree import Startup, parse


def startup(*argv: str, environ: Mapping[str, str] | None = None, command: str = "serve") -> Startup:
    """Parse ``comfyx COMMAND ARGV`` with ``environ`` (default: none) as :func:`comfyx.cli.main.main` does."""
    args, _ = build_parser().parse_known_args([command, *argv])
    return parse(args, environ or {}, command)
