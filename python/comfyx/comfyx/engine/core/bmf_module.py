"""The BMF module every pool worker runs: it calls the job each packet carries.

A packet holds a Python callable by reference (no copy, no serialisation); the
callable reports its own result (see :mod:`comfyx.engine.core.pool`).
"""

from __future__ import annotations

from bmf import Module, ProcessResult, Timestamp


class JobRunner(Module):
    def __init__(self, node: int, option: dict | None = None):
        self.node = node

    def process(self, task) -> ProcessResult:
        for queue in task.get_inputs().values():
            while not queue.empty():
                packet = queue.get()
                if packet.timestamp == Timestamp.EOF:
                    task.set_timestamp(Timestamp.DONE)
                    continue
                packet.get(None)()
        return ProcessResult.OK
