"""The one place the BMF engine replaces ComfyUI's functions and classes (no file patching).

Called once ComfyUI has imported ``execution``, before ``main.py``'s prompt worker builds its
executor. Every replacement goes through one :class:`~comfyx.comfyui.patching.Patches`, which
checks it against the signature the original has in ComfyUI v0.3.64 (another ComfyUI stops
start-up, naming what changed) and can put every original back (:meth:`Patches.undo`).
"""

from __future__ import annotations

import logging
from types import ModuleType

from comfyx.comfyui.patching import Patches
from comfyx.engine.core.pool import WorkerPool
from comfyx.engine.settings import EngineSettings

log = logging.getLogger("comfyx.engine")

# ComfyUI v0.3.64's signatures of what the engine replaces (a class: its __init__).
MAP_NODE_OVER_LIST = ("(prompt_id, unique_id, obj, input_data_all, func, allow_interrupt=False, "
                      "execution_block_cb=None, pre_execute_cb=None, hidden_inputs=None)")
EXECUTE = ("(server, dynprompt, caches, current_item, extra_data, executed, prompt_id, execution_list, "
           "pending_subgraph_results, pending_async_nodes)")
EXECUTION_LIST = "(self, dynprompt, output_cache)"
PROGRESS_HANDLER = "(self, server_instance)"
PROMPT_EXECUTOR = "(self, server, cache_type=False, cache_size=None)"
SET_DEFAULT_PREFIX = "(prefix_root, call_index, graph_index=0)"
ALLOC_PREFIX = "(root=None, call_index=None, graph_index=None)"


def install_into(execution: ModuleType, settings: EngineSettings, pool: WorkerPool, patches: Patches) -> None:
    """Put the engine in place; main.py's worker then builds the engine's executor."""
    from comfy_execution.graph_utils import GraphBuilder

    from comfyx.engine.adapter import progress, running
    from comfyx.engine.adapter.executor import executor_class

    patches.replace(execution, "_async_map_node_over_list", running.map_node_over_list, MAP_NODE_OVER_LIST)
    patches.replace(execution, "execute", running.execute, EXECUTE)
    patches.replace(execution, "ExecutionList", running.TrackedExecutionList, EXECUTION_LIST)
    # The GraphBuilder prefix becomes per thread, so that expansion nodes running at once on
    # different workers cannot take each other's node ids.
    patches.replace(GraphBuilder, "set_default_prefix", classmethod(running.set_default_prefix), SET_DEFAULT_PREFIX)
    patches.replace(GraphBuilder, "alloc_prefix", classmethod(running.alloc_prefix), ALLOC_PREFIX)
    patches.replace(execution, "WebUIProgressHandler", progress.handler_for_prompt, PROGRESS_HANDLER)
    patches.replace(execution, "PromptExecutor", executor_class(settings, pool), PROMPT_EXECUTOR)
    log.info("comfyx: prompts run on the BMF engine (%d workers)", settings.workers)
