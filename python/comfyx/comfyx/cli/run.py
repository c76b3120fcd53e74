"""``comfyx run``: one workflow, headless, with a progress bar per node."""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from pathlib import Path

from comfyx.cli.common import EXIT_ERROR, EXIT_INTERRUPTED, EXIT_USAGE, STARTUP_ERRORS, prepare_comfyui, say
from comfyx.cli.progress import ProgressRenderer
from comfyx.comfyui import launch
from comfyx.comfyui.headless import HeadlessRun, RunResult, WorkflowError, check_api_workflow, is_finished
from comfyx.hardening import HardeningSettings
from comfyx.settings.tree import Settings

# One workflow, no HTTP server: the worker, validation, file and signal guarantees, no stored history.
RUN_HARDENING = HardeningSettings(persist_history=False)


def run(args: argparse.Namespace, settings: Settings) -> int:
    try:
        workflow = check_api_workflow(_read_workflow(args.workflow))
    except (OSError, json.JSONDecodeError, WorkflowError) as err:
        say(f"error: {args.workflow}: {err}")
        return EXIT_USAGE

    comfyui_args = list(args.comfyui_args)
    if args.output_dir:
        comfyui_args += ["--output-directory", str(Path(args.output_dir).resolve())]
    renderer = ProgressRenderer(workflow)
    headless = HeadlessRun(workflow, renderer.on_event)
    try:
        checkout = prepare_comfyui(args, comfyui_args, dataclasses.replace(settings, hardening=RUN_HARDENING))
        headless.install()
        launch.run_main(checkout)
    except STARTUP_ERRORS as err:
        say(f"error: {err}")
        return EXIT_USAGE
    except Exception as err:
        if not is_finished(err):
            raise
    finally:
        renderer.close()

    if headless.result is None:  # main.py returned without finishing: Ctrl-C
        _interrupt_worker()
        say("interrupted")
        return EXIT_INTERRUPTED
    return report(headless.result, workflow)


def report(result: RunResult, workflow: dict) -> int:
    """Print the outcome; the files written go to stdout, one per line."""
    if result.status == "success":
        for path in result.outputs:
            print(path)
        say(f"done: {len(result.outputs)} file(s) written")
        return 0
    if result.status == "invalid":
        error = result.error or {}
        say(f"error: invalid workflow: {error.get('message', '')}")
        if error.get("details"):
            say(f"  {error['details']}")
        for node_id, info in result.node_errors.items():
            for reason in info.get("errors", []):
                say(f"  node {node_id} ({info.get('class_type')}): {reason.get('message')}: {reason.get('details')}")
        return EXIT_USAGE
    error = result.error or {}
    node_id = error.get("node_id")
    node_type = error.get("node_type") or workflow.get(node_id, {}).get("class_type")
    if result.status == "interrupted":
        say(f"interrupted at node {node_id} ({node_type})")
        return EXIT_INTERRUPTED
    message = (error.get("exception_message") or "").strip()
    say(f"error: node {node_id} ({node_type}) failed: {error.get('exception_type')}: {message}")
    traceback = "".join(error.get("traceback") or [])
    if traceback:
        print(traceback, file=sys.stderr, end="")
    return EXIT_ERROR


def _read_workflow(path: str) -> object:
    text = sys.stdin.read() if path == "-" else Path(path).read_text(encoding="utf-8")
    return json.loads(text)


def _interrupt_worker() -> None:
    nodes = sys.modules.get("nodes")
    if nodes is not None:
        nodes.interrupt_processing()
