"""Run one API-format workflow through a full ComfyUI start-up, without listening on a port.

ComfyUI's ``main.py`` runs as usual (so flags, custom nodes, the prompt worker and
progress hooks are all ComfyUI's own); only the step that would bind the HTTP
server is replaced by one that validates the workflow, queues it on ComfyUI's
prompt queue and waits for its history entry.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType

from comfyx.comfyui.hooks import after_import

CLIENT_ID = "comfyx-run"

EventSink = Callable[[str, dict], None]


class WorkflowError(ValueError):
    """The file is not an API-format ComfyUI workflow."""


@dataclass
class RunResult:
    """What became of a headless run."""

    status: str  # "success", "error" (a node failed), "invalid" (validation), "interrupted"
    prompt_id: str
    outputs: list[Path] = field(default_factory=list)
    error: dict | None = None
    node_errors: dict = field(default_factory=dict)


def check_api_workflow(workflow: object) -> dict:
    """Reject what is not an API-format workflow, naming what is wrong."""
    if not isinstance(workflow, dict):
        raise WorkflowError(f"expected a JSON object of nodes, got {type(workflow).__name__}")
    if "nodes" in workflow and "links" in workflow:
        raise WorkflowError("this is a UI-format workflow; export it with 'Export (API)' in ComfyUI")
    if not workflow:
        raise WorkflowError("the workflow has no nodes")
    for node_id, node in workflow.items():
        if not isinstance(node, dict) or "class_type" not in node:
            raise WorkflowError(f"node {node_id!r} is not an object with a 'class_type'")
        if not isinstance(node.get("inputs", {}), dict):
            raise WorkflowError(f"node {node_id!r}: 'inputs' must be an object")
    return workflow


class HeadlessRun:
    """Installs the hook that replaces ComfyUI's listener with one workflow run."""

    def __init__(self, workflow: dict, on_event: EventSink):
        self.workflow = workflow
        self.on_event = on_event
        self.result: RunResult | None = None

    def install(self) -> None:
        after_import("server", self._replace_listener)
        # Our renderer draws the step bars; ComfyUI's own tqdm bars would draw them twice.
        after_import("comfy.utils", lambda utils: utils.set_progress_bar_enabled(False))

    def _replace_listener(self, server_module: ModuleType) -> None:
        run = self

        async def start_multi_address(server, addresses, call_on_start=None, verbose=True):
            run.result = await run._run(server)
            raise _Finished

        server_module.PromptServer.start_multi_address = start_multi_address

    async def _run(self, server) -> RunResult:
        import execution

        prompt_id = str(uuid.uuid4())
        self._tee_events(server)
        valid, error, outputs, node_errors = await execution.validate_prompt(prompt_id, self.workflow, None)
        if not valid:
            return RunResult("invalid", prompt_id, error=error, node_errors=node_errors)
        server.prompt_queue.put((0, prompt_id, self.workflow, {"client_id": CLIENT_ID}, outputs))
        history = await asyncio.get_running_loop().run_in_executor(None, _wait_for_history, server, prompt_id)
        return _result_from_history(prompt_id, history)

    def _tee_events(self, server) -> None:
        send_sync = server.send_sync

        def tee(event, data, sid=None):
            if isinstance(event, str) and isinstance(data, dict):
                self.on_event(event, data)
            send_sync(event, data, sid)

        server.send_sync = tee


class _Finished(Exception):
    """Raised out of ComfyUI's event loop once the workflow is done, to end ``main.py``."""


def is_finished(exc: BaseException) -> bool:
    return isinstance(exc, _Finished)


def _wait_for_history(server, prompt_id: str) -> dict:
    while True:
        history = server.prompt_queue.get_history(prompt_id=prompt_id)
        if prompt_id in history:
            return history[prompt_id]
        time.sleep(0.05)


def _result_from_history(prompt_id: str, entry: dict) -> RunResult:
    import folder_paths

    messages = dict(entry["status"]["messages"]) if entry.get("status") else {}
    if "execution_interrupted" in messages:
        return RunResult("interrupted", prompt_id, error=messages["execution_interrupted"])
    if "execution_error" in messages:
        return RunResult("error", prompt_id, error=messages["execution_error"])
    files = []
    for node_output in entry.get("outputs", {}).values():
        for items in node_output.values():
            for item in items if isinstance(items, list) else []:
                if isinstance(item, dict) and item.get("type") == "output" and "filename" in item:
                    root = Path(folder_paths.get_directory_by_type("output"))
                    files.append(root / item.get("subfolder", "") / item["filename"])
    return RunResult("success", prompt_id, outputs=files)
