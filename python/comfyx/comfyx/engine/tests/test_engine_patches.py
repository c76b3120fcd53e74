"""The BMF engine replaces ComfyUI's functions in one place (``engine/adapter/hook.py``): each checked against
its v0.3.64 signature, all recorded and put back by ``Patches.undo``. On real ComfyUI, in a process of its
own (ComfyUI's modules hold global state)."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from comfyx.testing.reports import run_for_report

pytestmark = pytest.mark.comfyui

SCRIPT = textwrap.dedent("""
    import inspect, json, sys
    sys.path.insert(0, sys.argv[1])
    sys.argv = ["main.py", "--cpu"]
    import comfy.cli_args
    comfy.cli_args.args.cpu = True
    import execution
    from comfy_execution.graph_utils import GraphBuilder
    from comfyx.comfyui.patching import IncompatibleComfyUIError, Patches
    from comfyx.engine.adapter import hook
    from comfyx.engine.settings import EngineSettings

    NAMES = ["_async_map_node_over_list", "execute", "ExecutionList", "WebUIProgressHandler", "PromptExecutor"]
    def state():
        return [getattr(execution, n) for n in NAMES] + [GraphBuilder.__dict__[n] for n in
                                                         ("set_default_prefix", "alloc_prefix")]

    before = state()
    patches = Patches()
    hook.install_into(execution, EngineSettings(workers=2), pool=None, patches=patches)
    after = state()
    report = {"replaced": sum(a is not b for a, b in zip(before, after)),
              "bound": execution.PromptExecutor.settings.workers,
              "classmethods": [type(GraphBuilder.__dict__[n]).__name__ for n in ("set_default_prefix", "alloc_prefix")]}
    patches.undo()
    report["restored"] = all(a is b for a, b in zip(before, state()))
    # a ComfyUI whose function takes other arguments: start-up stops, naming it
    def execute(server, dynprompt, caches, current_item):
        pass
    execution.execute = execute
    try:
        hook.install_into(execution, EngineSettings(), pool=None, patches=Patches())
    except IncompatibleComfyUIError as error:
        report["refused"] = str(error)
    print("REPORT " + json.dumps(report))
""")


def test_the_engines_replacements_are_checked_recorded_and_undone(comfyui: Path) -> None:
    report = run_for_report(["-c", SCRIPT, str(comfyui)], timeout=300)
    assert report["replaced"] == 7 and report["bound"] == 2
    assert report["classmethods"] == ["classmethod", "classmethod"]
    assert report["restored"] is True
    assert report["refused"].startswith("execution.execute takes (server, dynprompt, caches, current_item); comfyx "
                                        "replaces it and was written for (server, dynprompt, caches, current_item, "
                                        "extra_data, executed, prompt_id, execution_list")
