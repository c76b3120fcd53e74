"""ComfyUI's prompt worker survives what a prompt makes its executor raise.

``main.py``'s worker thread calls ``PromptExecutor.execute`` with nothing around it: an
exception raised there, outside any node (ComfyUI reports node errors itself), ends the
thread, and from then on prompts are queued and never run while HTTP keeps answering.
The executor here reports such an exception as that prompt's ``execution_error`` and
returns, so the worker records the prompt in the history and goes on with the next one.
"""

from __future__ import annotations

import logging
import traceback
from typing import Any

import execution

from comfyx.comfyui.patching import check_signature

log = logging.getLogger("comfyx.hardening")

EXECUTE_SIGNATURE = "(self, prompt, prompt_id, extra_data={}, execute_outputs=[])"
TRACEBACK_FRAMES = 40  # a RecursionError's traceback has a thousand; the innermost tell what failed


def check_execute(executor_class: type) -> None:
    check_signature(executor_class.execute, EXECUTE_SIGNATURE, f"{executor_class.__name__}.execute")


def guarded(executor_class: type) -> type:
    """``executor_class`` (ComfyUI's executor, or the engine's) with an ``execute`` that never raises."""

    class GuardedPromptExecutor(executor_class):
        def execute(self, prompt: dict, prompt_id: str, extra_data: Any = {}, execute_outputs: list = []) -> None:  # noqa: B006 - ComfyUI's signature
            try:
                super().execute(prompt, prompt_id, extra_data, execute_outputs)
            except Exception as exc:
                log.exception("comfyx: prompt %s failed outside its nodes", prompt_id)
                report_failure(self, prompt_id, extra_data, exc)

    GuardedPromptExecutor.__qualname__ = GuardedPromptExecutor.__name__ = f"Guarded{executor_class.__name__}"
    return GuardedPromptExecutor


def report_failure(executor: Any, prompt_id: str, extra_data: Any, exc: Exception) -> None:
    """Finish the prompt as ComfyUI finishes a failed one: an ``execution_error``, no outputs."""
    if not any(data.get("prompt_id") == prompt_id for _, data in executor.status_messages):
        executor.status_messages = []  # it failed before ComfyUI started this prompt's messages
    # ComfyUI sets the prompt's websocket client at its start; it may have failed before.
    client_id = extra_data.get("client_id") if isinstance(extra_data, dict) else None
    executor.server.client_id = client_id if isinstance(client_id, str) else None
    executor.success = False
    executor.add_message("execution_error", {
        "prompt_id": prompt_id,
        "node_id": None,
        "node_type": None,
        "executed": [],
        "exception_message": f"{exc}",
        "exception_type": execution.full_type_name(type(exc)),
        "traceback": traceback.format_tb(exc.__traceback__)[-TRACEBACK_FRAMES:],
        "current_inputs": {},
        "current_outputs": [],
    }, broadcast=False)
    executor.history_result = {"outputs": {}, "meta": {}}
    executor.server.last_node_id = None
