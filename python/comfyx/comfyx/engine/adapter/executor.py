"""``execution.PromptExecutor`` for the BMF engine, and the per-prompt choice of path.

:class:`BmfPromptExecutor` is ComfyUI's own ``PromptExecutor`` by inheritance alone (same loop,
same per-node ``execute``, same events and history; no second executor is kept) with three
things changed: its caches are keyed in O(1) per node (:mod:`.caching`), node functions that can
overlap with other ready nodes run on BMF workers (:mod:`.running`), and engine failures are
contained: one before any node ran runs the prompt again on ComfyUI's path (logged with the
reason); one after is reported as an ``execution_error`` and nothing re-runs. It also takes
ComfyUI's start-up objects out of later garbage collections (:func:`freeze_start_up_objects`).
The settings and the worker pool, both made at start-up, are bound to the class main.py builds
(:func:`executor_class`).

A prompt that does not run on BMF (``--no-bmf-force`` without ``extra_data.enable_bmf``, a
fallback, a request the engine cannot read) runs through ComfyUI's own ``execute`` with the same
caches, so a model loaded by one path is found by the other.
"""

from __future__ import annotations

import gc
import logging
import sys
import traceback
from typing import Any

import comfy.model_management
import execution

from comfyx.engine.adapter.caching import FastCacheSet
from comfyx.engine.adapter.running import PromptRun, current_run
from comfyx.engine.core.policy import CpuBoundTracker, Limiter
from comfyx.engine.core.pool import WorkerPool
from comfyx.engine.settings import EngineSettings

log = logging.getLogger("comfyx.engine")

PROMPT_END_EVENTS = ("execution_success", "execution_error", "execution_interrupted")

StockPromptExecutor = execution.PromptExecutor


def use_bmf(extra_data: object, force: bool) -> bool:
    """Whether a prompt runs on BMF: always with ``force``, else when ``extra_data.enable_bmf`` is truthy.

    ``extra_data`` is the request's own, unchecked by ComfyUI: one that is not a dict runs
    on ComfyUI's path, which treats it exactly as stock does.
    """
    if not isinstance(extra_data, dict):
        return False
    return force or bool(extra_data.get("enable_bmf"))


def freeze_start_up_objects() -> None:
    """Leave the objects that exist now out of every later garbage collection (``gc.freeze``).

    ComfyUI's prompt worker runs ``gc.collect()`` after a prompt (at most every 10 s), and a
    full collection visits every object: with torch and ComfyUI loaded about 600,000, some
    0.6 s during which the server sends no websocket message and answers no request. The
    executor is built once start-up (custom nodes included) is done; what exists then —
    modules, classes, node definitions — lives as long as the process. One collection first,
    so that start-up garbage is freed rather than kept.
    """
    gc.collect()
    gc.freeze()


def executor_class(settings: EngineSettings, pool: WorkerPool) -> type[BmfPromptExecutor]:
    """:class:`BmfPromptExecutor` bound to ``settings`` and ``pool``: main.py builds the executor with
    ComfyUI's arguments only."""
    return type("BmfPromptExecutor", (BmfPromptExecutor,), {"settings": settings, "pool": pool})


class BmfPromptExecutor(StockPromptExecutor):
    """Drop-in for ``execution.PromptExecutor`` (same constructor, attributes and ``execute``)."""

    settings: EngineSettings  # bound by executor_class
    pool: WorkerPool

    def __init__(self, server: Any, cache_type: Any = False, cache_size: int | None = None):
        freeze_start_up_objects()
        self._cpu = CpuBoundTracker()
        self._device_is_cpu = comfy.model_management.get_torch_device().type == "cpu"
        super().__init__(server, cache_type=cache_type, cache_size=cache_size)

    def reset(self) -> None:
        self.caches = FastCacheSet(cache_type=self.cache_type, cache_size=self.cache_size,
                                   model_cache=self.settings.model_cache,
                                   model_cache_size=self.settings.model_cache_size)
        self.status_messages = []
        self.success = True

    def execute(self, prompt: dict, prompt_id: str, extra_data: dict = {}, execute_outputs: list = []) -> None:  # noqa: B006 - ComfyUI's signature
        if not use_bmf(extra_data, self.settings.force):
            self._run_stock(prompt, prompt_id, extra_data, execute_outputs)
            return
        pool = self.pool
        run = PromptRun(pool=pool, limiter=Limiter(pool.size), cpu=self._cpu,
                        progress_interval=self.settings.progress_interval, device_is_cpu=self._device_is_cpu)
        token = current_run.set(run)
        try:
            super().execute(prompt, prompt_id, extra_data, execute_outputs)
            return
        except Exception as exc:
            run.drain()
            if run.started > 0:
                self._report_engine_failure(prompt_id, run, exc)
                return
            log.warning("comfyx BMF engine failed before any node ran (%s: %s); running prompt %s on the stock "
                        "executor", type(exc).__name__, exc, prompt_id, exc_info=True)
        finally:
            current_run.reset(token)
            run.drain()
        self._run_stock(prompt, prompt_id, extra_data, execute_outputs)  # outside the run: it must not be current

    def add_message(self, event: str, data: dict, broadcast: bool) -> None:
        run = current_run.get()
        if run is not None and run.progress is not None and event in PROMPT_END_EVENTS:
            run.progress.flush()
        super().add_message(event, data, broadcast)

    def handle_execution_error(self, prompt_id: str, prompt: dict, current_outputs: Any, executed: set,
                               error: dict, ex: Exception) -> None:
        run = current_run.get()
        # ComfyUI reports no inputs when an async node fails; a node we offloaded keeps its inputs in the report.
        if run is not None and "current_inputs" in error and not error["current_inputs"]:
            inputs = run.inputs.get(error["node_id"])
            if inputs is not None:
                error = {**error, "current_inputs": {
                    name: [execution.format_value(x) for x in values] for name, values in inputs.items()}}
        super().handle_execution_error(prompt_id, prompt, current_outputs, executed, error, ex)

    def _run_stock(self, prompt: dict, prompt_id: str, extra_data: dict, execute_outputs: list) -> None:
        # With no PromptRun current, every engine hook behaves as ComfyUI's own (see .running).
        super().execute(prompt, prompt_id, extra_data, execute_outputs)

    def _report_engine_failure(self, prompt_id: str, run: PromptRun, exc: Exception) -> None:
        log.error("comfyx BMF engine failed during prompt %s; not re-running it", prompt_id, exc_info=exc)
        node_id = None
        class_type = None
        if run.dynprompt is not None:
            node_id = next(reversed(run.inputs), None) or next(iter(run.dynprompt.original_prompt), None)
            if node_id is not None:
                class_type = run.dynprompt.get_node(node_id)["class_type"]
        self.success = False
        self.add_message("execution_error", {
            "prompt_id": prompt_id,
            "node_id": node_id,
            "node_type": class_type,
            "executed": [],
            "exception_message": f"comfyx BMF engine error: {exc}",
            "exception_type": execution.full_type_name(type(exc)),
            "traceback": traceback.format_tb(sys.exc_info()[2] or exc.__traceback__),
            "current_inputs": {},
            "current_outputs": [],
        }, broadcast=False)
        self.history_result = {"outputs": {}, "meta": {}}
        self.server.last_node_id = None
