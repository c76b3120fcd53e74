"""SIGTERM and SIGINT stop the server in an orderly way, within a bounded time.

Stock ComfyUI dies on SIGTERM wherever it is (a PNG half written), and on SIGINT stops
its event loop while the prompt worker runs on, which can abort the process as it exits.
Here the first SIGTERM or SIGINT:

1. stops taking prompts (``POST /prompt`` answers 503) and records each queued prompt in
   the history as not run;
2. interrupts the running prompt, which stops at its next node boundary (or a sampler's
   next step) and is recorded in the history as interrupted;
3. waits for that, at most ``timeout`` seconds, and then ends ComfyUI's event loop the
   way Ctrl-C does in stock ComfyUI (its ``main.py`` catches the KeyboardInterrupt, logs
   "Stopped server" and cleans up), so the process exits with status 0.

A prompt still running after ``timeout`` (a node that never reaches a boundary) is
recorded as interrupted and the process exits at once with status 0: letting the
interpreter shut down under a running node can abort it. A second signal exits at once.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import sys
import time
from typing import Any

import nodes

from comfyx.hardening.gate import Gate

log = logging.getLogger("comfyx.hardening")

POLL_SECONDS = 0.05


class Shutdown:
    def __init__(self, gate: Gate, prompt_queue: Any, timeout: float):
        self.gate = gate
        self.prompt_queue = prompt_queue
        self.timeout = timeout
        self.started = False

    def install(self, loop: asyncio.AbstractEventLoop) -> None:
        """Handle SIGTERM and SIGINT on ``loop`` (called in the main thread, before the loop runs)."""
        for number in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(number, self.begin, number)

    def begin(self, number: int) -> None:
        name = signal.Signals(number).name
        if self.started:
            log.warning("comfyx: %s again: exiting now", name)
            _exit_now(128 + number)
        self.started = True
        reason = f"not run: comfyx serve received {name} and shut down"
        self.gate.close(f"comfyx serve received {name}")
        not_run = self.prompt_queue.close(reason)
        running = self.prompt_queue.running()
        log.info("comfyx: %s: taking no more prompts; %d queued prompt(s) recorded as not run; %s", name,
                 len(not_run), f"interrupting prompt {running[0][1]}" if running else "no prompt running")
        asyncio.get_running_loop().create_task(self._stop(name))

    async def _stop(self, name: str) -> None:
        deadline = time.monotonic() + self.timeout
        while self.prompt_queue.running() and time.monotonic() < deadline:
            # Again and again: a prompt taken from the queue just before the signal clears the
            # flag as it starts.
            nodes.interrupt_processing()
            await asyncio.sleep(POLL_SECONDS)
        stuck = self.prompt_queue.running()
        if stuck:
            log.error("comfyx: prompt %s did not stop within %g s of %s; exiting without it", stuck[0][1],
                      self.timeout, name)
            for item in stuck:
                self.prompt_queue.record_failed(item, f"interrupted: comfyx serve received {name} and the prompt "
                                                      f"did not stop within {self.timeout:g} s")
            _exit_now(0)
        # From a plain callback, not this task: main.py's own stop ("Stopped server", temp files
        # cleaned, exit 0) catches it; a task's exception would also be reported as never retrieved.
        asyncio.get_running_loop().call_soon(_interrupt_main)


def _interrupt_main() -> None:
    raise KeyboardInterrupt


def _exit_now(status: int) -> None:
    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(status)
