"""ComfyUI's ``PromptQueue`` with a bounded, persistent history and a delete that reaches the running prompt.

- The history holds at most ``history_size`` entries (ComfyUI: 10,000, each as large as its
  prompt) and, with a :class:`~.history.HistoryStore`, is saved as each prompt ends and
  loaded again at start-up.
- Deleting the running prompt from the queue (``POST /queue {"delete": [id]}``) interrupts
  it; ComfyUI answers 200 and lets it run.
- :meth:`close` (at shutdown) empties the queue and records each prompt it held as not run,
  as it does each prompt put in afterwards (a request already past the HTTP checks), so
  that every prompt the server accepted has a history entry.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import nodes

from comfyx.hardening.history import HistoryStore

log = logging.getLogger("comfyx.hardening")

INIT_SIGNATURE = "(self, server)"


def queue_class(base: type, history_size: int, store: Callable[[], HistoryStore | None]) -> type:
    """A subclass of ComfyUI's ``PromptQueue``; ``store`` opens the history file (ComfyUI's paths are
    known only once its server is being built)."""

    class HardenedPromptQueue(base):
        def __init__(self, server: Any):
            super().__init__(server)
            self.closed: str | None = None  # why no prompt runs any more
            self.store = store()
            if self.store is not None:
                self.history.update(self.store.load())

        def put(self, item: tuple) -> None:
            with self.mutex:
                if self.closed is None:
                    super().put(item)
                else:
                    self.record_failed(item, self.closed)

        def task_done(self, item_id: int, history_result: dict, status: Any) -> None:
            with self.mutex:
                prompt_id = self.currently_running[item_id][1]
                super().task_done(item_id, history_result, status)
                evicted = []
                while len(self.history) > history_size:
                    evicted.append(next(iter(self.history)))
                    del self.history[evicted[-1]]
                if self.store is not None and prompt_id in self.history:
                    self.store.save(prompt_id, self.history[prompt_id])  # it drops the evicted ones itself

        def wipe_history(self) -> None:
            with self.mutex:
                super().wipe_history()
                if self.store is not None:
                    self.store.clear()

        def delete_history_item(self, id_to_delete: Any) -> None:
            with self.mutex:
                super().delete_history_item(id_to_delete)
                if self.store is not None and isinstance(id_to_delete, str):
                    self.store.delete([id_to_delete])

        def delete_queue_item(self, function: Callable[[tuple], bool]) -> bool:
            with self.mutex:
                if super().delete_queue_item(function):
                    return True
                # Checked and interrupted under the mutex: the next prompt cannot have started yet,
                # and it clears the interrupt flag when it starts.
                running = [item[1] for item in self.currently_running.values() if function(item)]
                if running:
                    log.info("comfyx: prompt %s deleted while running: interrupting it", running[0])
                    nodes.interrupt_processing()
                return bool(running)

        def knows(self, prompt_id: str) -> bool:
            """Whether ``prompt_id`` is queued, running or in the history."""
            with self.mutex:
                return (prompt_id in self.history or any(item[1] == prompt_id for item in self.queue)
                        or any(item[1] == prompt_id for item in self.currently_running.values()))

        def running(self) -> list[tuple]:
            """The queue items of the running prompt (none or one)."""
            with self.mutex:
                return list(self.currently_running.values())

        def close(self, reason: str) -> list[str]:
            """Empty the queue, recording each prompt it held as not run because of ``reason``."""
            with self.mutex:
                self.closed = reason
                pending, self.queue = sorted(self.queue), []
                for item in pending:
                    self.record_failed(item, reason)
                self.server.queue_updated()
            return [item[1] for item in pending]

        def record_failed(self, item: tuple, reason: str) -> None:
            """Put ``item`` in the history as a prompt that failed with ``reason``, as ComfyUI records one."""
            with self.mutex:
                item_id = self.task_counter
                self.task_counter += 1
                self.currently_running[item_id] = item
                error = {"prompt_id": item[1], "node_id": None, "node_type": None, "executed": [],
                         "exception_message": reason, "exception_type": "comfyx.NotRun", "traceback": [],
                         "current_inputs": {}, "current_outputs": []}
                self.task_done(item_id, {"outputs": {}, "meta": {}},
                               status=base.ExecutionStatus("error", False, [("execution_error", error)]))

    return HardenedPromptQueue
