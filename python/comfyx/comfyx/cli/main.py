"""``comfyx``: start, run and inspect ComfyUI with comfyx's engine, kernels and backends."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence

from comfyx import PINNED_COMFYUI_COMMIT, PINNED_COMFYUI_VERSION, __version__
from comfyx.settings import tree

_EPILOG = f"""\
comfyx is built and tested against ComfyUI v{PINNED_COMFYUI_VERSION} ({PINNED_COMFYUI_COMMIT[:8]}).
ComfyUI is found from --comfyui, then $COMFYUI_PATH, then the current directory,
then the directory `comfyx comfyui install` uses by default.
Every comfyx setting is a flag whose environment variable is its name in capitals after
COMFYX_ (--bmf-workers <-> $COMFYX_BMF_WORKERS); the flag wins. Settings are read and
checked once, at start-up.
"""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="comfyx",
        description="Run ComfyUI faster on NVIDIA, Intel, TPU and CPU hardware.",
        epilog=_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        allow_abbrev=False,
    )
    parser.add_argument("--version", action="version", version=f"comfyx {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    serve = commands.add_parser(
        "serve",
        help="start the ComfyUI server with comfyx installed",
        usage="comfyx serve [-h] [--comfyui DIR] [--engine ENGINE] [--backend BACKEND] [--] [ComfyUI options ...]",
        description="Start ComfyUI's own server (its main.py, in this process) with comfyx's hooks and "
        "nodes. Every option comfyx does not know, and everything after `--`, goes to ComfyUI "
        "untouched, e.g. `comfyx serve -- --cpu --listen 0.0.0.0 --port 8188`.",
        allow_abbrev=False,
    )
    _add_launch_options(serve, "serve")  # the hardening too: comfyx run serves no HTTP and keeps no history

    run = commands.add_parser(
        "run",
        help="run an API-format workflow headless and print the files it wrote",
        usage="comfyx run [-h] [--output-dir DIR] [--comfyui DIR] [--engine ENGINE] [--backend BACKEND] "
        "WORKFLOW.json [--] [ComfyUI options ...]",
        description="Run one API-format workflow (ComfyUI's 'Export (API)') in this process, without an "
        "HTTP server. Exit status: 0 success, 1 a node failed, 2 invalid workflow or usage, "
        "130 interrupted. Options after `--` go to ComfyUI (e.g. `-- --cpu`).",
        allow_abbrev=False,
    )
    run.add_argument("workflow", metavar="WORKFLOW.json", help="API-format workflow file ('-' for stdin)")
    run.add_argument("--output-dir", metavar="DIR", help="where output nodes save files (ComfyUI's --output-directory)")
    _add_launch_options(run, "run")

    doctor = commands.add_parser(
        "doctor",
        help="report versions, accelerators, engines, kernel backends, caches and models",
        description="Report what comfyx sees: versions, accelerators, which engines and kernel backends "
        "can run (and why not), and where caches and models live.",
        allow_abbrev=False,
    )
    doctor.add_argument("--json", action="store_true", help="print one JSON object instead of text")
    doctor.add_argument("--comfyui", metavar="DIR", help="ComfyUI checkout to report on")
    tree.add_arguments(doctor, "doctor")

    from comfyx.cli.bench import add_parser as add_bench_parser

    add_bench_parser(commands)

    comfyui = commands.add_parser("comfyui", help="manage a ComfyUI checkout", allow_abbrev=False)
    comfyui_commands = comfyui.add_subparsers(dest="comfyui_command", metavar="COMMAND", required=True)
    install = comfyui_commands.add_parser(
        "install",
        help=f"clone ComfyUI v{PINNED_COMFYUI_VERSION} and install its requirements",
        description=f"Clone ComfyUI at the pinned commit {PINNED_COMFYUI_COMMIT} and install its Python "
        "requirements into the running interpreter (for people without Nix).",
        allow_abbrev=False,
    )
    install.add_argument(
        "directory", nargs="?", metavar="DIR", help="where to clone (default: comfyx's data directory)"
    )
    install.add_argument("--repo", metavar="URL", help="clone from this URL or mirror instead of GitHub")
    install.add_argument("--no-requirements", action="store_true", help="clone only; do not pip install requirements")
    tree.add_arguments(install, "comfyui")
    return parser


def _add_launch_options(parser: argparse.ArgumentParser, command: str) -> None:
    parser.add_argument(
        "--comfyui", metavar="DIR", help="ComfyUI checkout (default: $COMFYUI_PATH, then the current directory)"
    )
    tree.add_arguments(parser, command)  # comfyx's settings, never passed to ComfyUI


def split_passthrough(argv: Sequence[str]) -> tuple[list[str], list[str]]:
    """Split at the first ``--``: comfyx's arguments before it, ComfyUI's after."""
    argv = list(argv)
    if "--" in argv:
        cut = argv.index("--")
        return argv[:cut], argv[cut + 1:]
    return argv, []


def main(argv: Sequence[str] | None = None) -> int:
    ours, passthrough = split_passthrough(sys.argv[1:] if argv is None else argv)
    parser = build_parser()
    args, unknown = parser.parse_known_args(ours)
    if unknown and args.command not in ("serve", "run"):
        parser.error(f"unrecognized arguments: {' '.join(unknown)}")
    args.comfyui_args = unknown + passthrough
    if args.command in ("serve", "run"):
        from comfyx.cli.common import EXIT_USAGE, STARTUP_ERRORS, say

        try:
            startup = tree.parse(args, os.environ, args.command)  # the one place settings are read
        except STARTUP_ERRORS as err:
            say(f"error: {err}")
            return EXIT_USAGE
        for note in startup.notes:
            say(f"warning: {note}")
        if args.command == "serve":
            from comfyx.cli.serve import serve

            return serve(args, startup.settings)
        from comfyx.cli.run import run

        return run(args, startup.settings)
    if args.command == "bench":
        from comfyx.cli.bench import bench

        return bench(args)
    if args.command == "doctor":
        from comfyx.cli.doctor import doctor

        return doctor(args)
    from comfyx.cli.install import install

    return install(args)


if __name__ == "__main__":
    sys.exit(main())
