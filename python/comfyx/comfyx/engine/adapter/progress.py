"""``progress_state`` events without the O(N²) traffic.

ComfyUI sends the state of every started node in each ``progress_state`` message, on every
node start, progress update and finish: a chain of 400 nodes sends 1,200 messages,
32 MB of JSON, and the websocket takes far longer than the nodes. The handler here sends
the same messages (same payload) but at most one per ``--bmf-progress-interval`` seconds
(default 0.1; the prompt's ``PromptRun`` carries it): a change inside the interval
is sent at its end, and the prompt's final state is always sent before
``execution_success`` / ``execution_error`` / ``execution_interrupted``.
``--bmf-progress-interval 0`` sends every message, exactly as ComfyUI does.
"""

from __future__ import annotations

import threading
import time
from typing import Any

from comfy_execution.progress import WebUIProgressHandler


class CoalescingProgressHandler(WebUIProgressHandler):
    """ComfyUI's WebUI progress handler, sending ``progress_state`` at most once per interval."""

    def __init__(self, server_instance: Any, interval: float):
        super().__init__(server_instance)
        self.interval = interval
        self._lock = threading.Lock()
        self._last_sent = 0.0
        self._pending: str | None = None  # prompt id with unsent changes
        self._timer: threading.Timer | None = None

    def _send_progress_state(self, prompt_id: str, nodes: dict) -> None:
        if self.interval <= 0:
            super()._send_progress_state(prompt_id, nodes)
            return
        with self._lock:
            wait = self._last_sent + self.interval - time.monotonic()
            if wait > 0:
                self._pending = prompt_id
                if self._timer is None:
                    self._timer = threading.Timer(wait, self.flush)
                    self._timer.daemon = True
                    self._timer.start()
                return
            self._last_sent = time.monotonic()
            self._pending = None
            super()._send_progress_state(prompt_id, dict(nodes))

    def flush(self) -> None:
        """Send the latest state now if a change has not been sent yet."""
        with self._lock:
            if self._timer is not None:
                self._timer.cancel()
                self._timer = None
            if self._pending is None:
                return
            prompt_id, self._pending = self._pending, None
            self._last_sent = time.monotonic()
            super()._send_progress_state(prompt_id, dict(self.registry.nodes))


def handler_for_prompt(server_instance: Any) -> WebUIProgressHandler:
    """Stands in for ``execution.WebUIProgressHandler``: coalescing for BMF prompts, ComfyUI's otherwise."""
    from comfyx.engine.adapter.running import current_run

    run = current_run.get()
    if run is None:
        return WebUIProgressHandler(server_instance)
    run.progress = CoalescingProgressHandler(server_instance, run.progress_interval)
    return run.progress
