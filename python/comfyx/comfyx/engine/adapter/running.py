"""Running a node's function: inline as ComfyUI does, or on a BMF worker when it can overlap.

ComfyUI's executor already overlaps *async* nodes: the node's coroutine becomes a
task, the node is set aside with an external block, and the executor goes on with
other ready nodes. We reuse exactly that path for synchronous nodes: when other
nodes are ready or running, the node's function is handed to a BMF worker and
presented to ComfyUI as a coroutine. Everything else about the node (inputs,
lazy checks, ExecutionBlocker, list mapping, expansion, caching, events) stays in
ComfyUI's own ``execution.execute``. A node alone in the graph's frontier runs
inline on the executor thread, exactly as in stock ComfyUI, with no hand-off cost.

When a node fails or is interrupted, ComfyUI's loop stops at once; nodes of other
branches may be running on workers then. No node starts after that, and the ones
already running are waited for and recorded as ComfyUI records a finished node
(``executed`` event, history) before the prompt's end is reported: stock ComfyUI runs
one node at a time, so every node that finishes there is reported, and a file an output
node wrote must not go unreported here either.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import inspect
import threading
import time
from collections.abc import Iterator
from concurrent.futures import Future, wait
from dataclasses import dataclass, field
from typing import Any

import comfy.model_management
import execution
import nodes
import torch
from comfy_api.internal import _ComfyNodeInternal, is_class, make_locked_method_func
from comfy_execution.graph import DynamicPrompt, ExecutionList
from comfy_execution.graph_utils import GraphBuilder
from comfy_execution.utils import get_executing_context

from comfyx.engine.core.policy import CpuBoundTracker, Lane, Limiter, lanes_for, may_run_on_a_worker, worth_offloading
from comfyx.engine.core.pool import WorkerPool
from comfyx.engine.core.ready import ReadyIndex


@dataclass
class PromptRun:
    """What the engine tracks while one prompt runs."""

    pool: WorkerPool
    limiter: Limiter
    cpu: CpuBoundTracker
    dynprompt: DynamicPrompt | None = None
    execution_list: ExecutionList | None = None
    started: int = 0  # node functions called so far
    in_flight: int = 0
    futures: list[Future] = field(default_factory=list)
    inputs: dict[str, dict] = field(default_factory=dict)  # real node id -> inputs of its last offloaded call
    lanes: dict[type, frozenset[Lane]] = field(default_factory=dict)
    computing: dict[Any, str] = field(default_factory=dict)  # output cache key -> node computing it on a worker
    waiting: dict[Any, list] = field(default_factory=dict)  # output cache key -> unblock callbacks
    progress: Any = None  # this prompt's progress handler (see .progress)
    progress_interval: float = 0.1  # seconds between its progress_state messages
    stopped: bool = False  # a node failed or was interrupted: no node starts any more
    device_is_cpu: bool = False  # ComfyUI's torch device is the CPU (see policy.may_run_on_a_worker)

    def should_offload(self, node_class: type) -> bool:
        """Hand the node to a worker only when it may leave the prompt thread and something else could run
        meanwhile."""
        if not may_run_on_a_worker(self.lanes_of(node_class), self.device_is_cpu):
            return False
        listed = self.execution_list
        if listed is None:
            return self.in_flight > 0
        return worth_offloading(self.in_flight, len(listed.last_ready), listed.externalBlocks)

    def lanes_of(self, node_class: type) -> frozenset[Lane]:
        if node_class not in self.lanes:
            self.lanes[node_class] = lanes_for(node_class)
        return self.lanes[node_class] | self.cpu.lanes(node_class)

    def drain(self) -> None:
        """Wait for every job this prompt handed to a worker (none outlives its prompt)."""
        wait(self.futures)


current_run: contextvars.ContextVar[PromptRun | None] = contextvars.ContextVar("comfyx_prompt_run", default=None)

_stock_map_node_over_list = execution._async_map_node_over_list
_stock_execute = execution.execute


async def execute(server, dynprompt, caches, current_item, extra_data, executed, prompt_id,
                  execution_list, pending_subgraph_results, pending_async_nodes):
    """ComfyUI's per-node ``execute``; a node whose output key another node is computing waits for it.

    ComfyUI runs two identical nodes of one prompt once: the second finds the first's
    output in the cache. With the first still running on a worker, the second is set
    aside (an external block, as for async nodes) until the first is done, and then
    finds the output in the cache, as in ComfyUI.
    """
    run = current_run.get()
    key = None
    if run is not None and dynprompt.get_parent_node_id(current_item) is None:
        key = caches.outputs.cache_key_set.get_data_key(current_item)
        owner = run.computing.get(key)
        if owner is not None and owner != current_item:
            run.waiting.setdefault(key, []).append(execution_list.add_external_block(current_item))
            return (execution.ExecutionResult.PENDING, None, None)
    result = await _stock_execute(server, dynprompt, caches, current_item, extra_data, executed, prompt_id,
                                  execution_list, pending_subgraph_results, pending_async_nodes)
    if run is not None and result[0] == execution.ExecutionResult.FAILURE:
        run.stopped = True
        if isinstance(result[2], comfy.model_management.InterruptProcessingException):
            nodes.interrupt_processing()  # running nodes that check for interrupts stop there too
        for node_id in await _finished_meanwhile(pending_async_nodes, current_item):
            await _stock_execute(server, dynprompt, caches, node_id, extra_data, executed, prompt_id,
                                 execution_list, pending_subgraph_results, pending_async_nodes)
        return result
    if key is not None:
        if result[0] == execution.ExecutionResult.PENDING:
            if current_item in pending_async_nodes:
                run.computing[key] = current_item
        elif run.computing.get(key) == current_item:
            del run.computing[key]
            for unblock in run.waiting.pop(key, []):
                unblock()
    return result


async def _finished_meanwhile(pending_async_nodes: dict, failed: str) -> list[str]:
    """Wait for the nodes set aside while their work runs; those whose work succeeded, to record."""
    others = [node_id for node_id in pending_async_nodes if node_id != failed]
    await asyncio.gather(*(task for node_id in others for task in pending_async_nodes[node_id]
                           if isinstance(task, asyncio.Task)), return_exceptions=True)
    return [node_id for node_id in others if all(_succeeded(task) for task in pending_async_nodes[node_id])]


def _succeeded(result: Any) -> bool:
    if not isinstance(result, asyncio.Task):
        return True
    return not result.cancelled() and result.exception() is None


async def map_node_over_list(prompt_id, unique_id, obj, input_data_all, func, allow_interrupt=False,
                             execution_block_cb=None, pre_execute_cb=None, hidden_inputs=None):
    """ComfyUI's ``_async_map_node_over_list``, with the node function offloaded when useful."""
    run = current_run.get()
    node_class = obj if is_class(obj) else type(obj)
    calls_function = run is not None and allow_interrupt and func == getattr(node_class, "FUNCTION", None)
    if calls_function:
        run.started += 1
    if (calls_function and not inspect.iscoroutinefunction(getattr(node_class, func))
            and run.should_offload(node_class)):
        run.inputs[run.dynprompt.get_real_node_id(unique_id)] = input_data_all
        obj = OffloadedNode(obj, func, run, unique_id, hidden_inputs)
    return await _stock_map_node_over_list(prompt_id, unique_id, obj, input_data_all, func, allow_interrupt,
                                           execution_block_cb, pre_execute_cb, hidden_inputs)


class OffloadedNode:
    """Stands in for a node object; its function is a coroutine that runs the real one on a worker.

    Calls of one node (one per list index) run one after another in index order, and
    after one fails the rest do not run — as in ComfyUI's synchronous loop.
    """

    def __init__(self, target: Any, func: str, run: PromptRun, unique_id: str, hidden_inputs: Any):
        self._target = target
        self._func = func
        self._run = run
        self._unique_id = unique_id
        self._hidden_inputs = hidden_inputs
        self._lock = asyncio.Lock()
        self._failed: BaseException | None = None

    def __getattr__(self, name: str) -> Any:
        if name == self._func:
            return self._call
        return getattr(self._target, name)

    def _function(self) -> Any:
        target = self._target
        node_class = target if is_class(target) else type(target)
        if issubclass(node_class, _ComfyNodeInternal):
            node_class.VALIDATE_CLASS()
            clone = node_class.PREPARE_CLASS_CLONE(self._hidden_inputs)
            return make_locked_method_func(node_class, self._func, clone)
        return getattr(target, self._func)

    async def _call(self, **inputs: Any) -> Any:
        context = get_executing_context()
        index = context.list_index if context is not None else None
        run = self._run
        async with self._lock:
            if self._failed is not None:
                raise self._failed
            function = self._function()
            node_class = self._target if is_class(self._target) else type(self._target)
            run.in_flight += 1
            try:
                async with run.limiter.slot(run.lanes_of(node_class)):
                    if run.stopped:  # the prompt ended while this node waited for a worker
                        raise comfy.model_management.InterruptProcessingException()
                    future = run.pool.submit(contextvars.copy_context().run, _call_in_worker, function, inputs,
                                             self._unique_id, index, run, node_class)
                    run.futures.append(future)
                    return await asyncio.wrap_future(future)
            except BaseException as exc:
                self._failed = exc
                raise
            finally:
                run.in_flight -= 1


def _call_in_worker(function: Any, inputs: dict, unique_id: str, index: int | None, run: PromptRun,
                    node_class: type) -> Any:
    with _interrupt_kept():
        nodes.before_node_execution()  # interrupted meanwhile: do not start
        if index is not None:
            GraphBuilder.set_default_prefix(unique_id, index, 0)
        wall, thread_cpu, running = time.perf_counter(), time.thread_time(), run.in_flight
        try:
            with torch.inference_mode():
                return function(**inputs)
        finally:
            run.cpu.record(node_class, time.thread_time() - thread_cpu, time.perf_counter() - wall,
                           max(running, run.in_flight))


@contextlib.contextmanager
def _interrupt_kept() -> Iterator[None]:
    """Seeing an interrupt clears ComfyUI's flag; set it again, so that every branch stops at its
    next node and not only the one that saw it first (stock runs one node at a time)."""
    try:
        yield
    except comfy.model_management.InterruptProcessingException:
        nodes.interrupt_processing()
        raise


class TrackedExecutionList(ExecutionList):
    """ComfyUI's ``ExecutionList``, registered with the running prompt so offloading can see the frontier.

    Its ready nodes come from a :class:`ReadyIndex` (same nodes, same order) rather than
    a scan of every pending node per staged node.
    """

    def __init__(self, dynprompt: DynamicPrompt, output_cache: Any):
        super().__init__(dynprompt, output_cache)
        self._ready_index = ReadyIndex()
        self.pendingNodes = self._ready_index.pending
        self.blockCount = self._ready_index.block_count
        self.last_ready: list[str] = []  # the nodes that were ready when the last node was staged
        run = current_run.get()
        if run is not None:
            run.dynprompt = dynprompt
            run.execution_list = self

    def get_ready_nodes(self) -> list[str]:
        self.last_ready = self._ready_index.ready()
        return self.last_ready


_prefix = threading.local()


def _prefix_state() -> list:
    if not hasattr(_prefix, "state"):
        _prefix.state = ["", 0, 0]
    return _prefix.state


def set_default_prefix(cls: type, prefix_root: str, call_index: int, graph_index: int = 0) -> None:
    """``GraphBuilder.set_default_prefix``, per thread."""
    _prefix.state = [prefix_root, call_index, graph_index]


def alloc_prefix(cls: type, root: str | None = None, call_index: int | None = None,
                 graph_index: int | None = None) -> str:
    """``GraphBuilder.alloc_prefix``, per thread."""
    state = _prefix_state()
    root = state[0] if root is None else root
    call_index = state[1] if call_index is None else call_index
    graph_index = state[2] if graph_index is None else graph_index
    state[2] += 1
    return f"{root}.{call_index}.{graph_index}."
