"""A pool of BMF worker nodes, each on its own BMF scheduler thread.

The pool is one BMF graph in push mode: ``size`` graph input streams, each feeding
one :class:`~comfyx.engine.core.bmf_module.JobRunner` node that has a scheduler of
its own, so jobs on different workers run concurrently. A job is a Python callable;
it travels inside a BMF packet by reference, so its arguments (tensors included)
are never copied.
"""

from __future__ import annotations

import contextlib
import ctypes
import itertools
import logging
import os
import signal
import sys
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import Future
from pathlib import Path
from typing import Any

_PACKAGE_ROOT = Path(__file__).resolve().parents[3]  # the directory holding ``comfyx/``
_ENTRY = "comfyx.engine.core.bmf_module.JobRunner"
# BMF's C++ side reads its log level once, when bmf is first imported; this module is imported at
# start-up (the engine is chosen then), before that.
os.environ.setdefault("BMF_LOG_LEVEL", "ERROR")


def bmf_unavailable_reason() -> str | None:
    """Why BMF cannot be imported here, or None when it can."""
    try:
        with _root_handlers_kept():
            import bmf  # noqa: F401
    except ImportError as exc:
        hint = ""
        if "libav" in str(exc) or "libsw" in str(exc):
            hint = " (babitmf 0.2.0 needs FFmpeg 4 shared libraries, e.g. Debian bullseye's libavcodec58)"
        return f"cannot import bmf: {exc}{hint}"
    return None


@contextlib.contextmanager
def _root_handlers_kept() -> Iterator[None]:
    """Take away the root-logger handlers added meanwhile.

    Importing bmf calls ``logging.basicConfig()``: the root logger gets a handler before
    ComfyUI's ``setup_logger`` adds its own, and every log line would be printed twice.
    """
    root = logging.getLogger()
    before = list(root.handlers)
    try:
        yield
    finally:
        for handler in [h for h in root.handlers if h not in before]:
            root.removeHandler(handler)


@contextlib.contextmanager
def _stdout_to_stderr() -> Iterator[None]:
    """Send what is written to file descriptor 1 meanwhile to stderr.

    BMF's C++ side logs to stdout while a graph starts, whatever ``BMF_LOG_LEVEL`` says;
    stdout can be a program's output (``comfyx run`` prints the files it wrote there).
    """
    sys.stdout.flush()
    saved = os.dup(1)
    os.dup2(2, 1)
    try:
        yield
    finally:
        ctypes.CDLL(None).fflush(None)  # C stdio buffers still holding BMF's lines
        os.dup2(saved, 1)
        os.close(saved)


_SIGACTION_SIZE = 256  # bytes; more than any libc's ``struct sigaction``


@contextlib.contextmanager
def _signal_handlers_kept() -> Iterator[None]:
    """Put back the process's signal handlers once BMF has replaced them.

    A BMF graph installs C handlers for SIGINT and SIGTERM that try to end the graph and
    leave the process running: Ctrl-C would no longer stop ``comfyx serve`` or ``comfyx
    run``, nor SIGTERM a service. Python's ``signal.signal`` works only in the main thread
    and the pool starts on ComfyUI's prompt worker, so libc's ``sigaction`` does it.
    """
    libc = ctypes.CDLL(None, use_errno=True)
    saved = {}
    for number in signal.valid_signals() - {signal.SIGKILL, signal.SIGSTOP}:
        action = ctypes.create_string_buffer(_SIGACTION_SIZE)
        if libc.sigaction(int(number), None, action) == 0:
            saved[number] = action
    try:
        yield
    finally:
        for number, action in saved.items():
            current = ctypes.create_string_buffer(_SIGACTION_SIZE)
            if libc.sigaction(int(number), None, current) == 0 and current.raw != action.raw:
                libc.sigaction(int(number), action, None)


class WorkerPool:
    """Runs callables on ``size`` BMF worker nodes; :meth:`submit` returns a Future."""

    def __init__(self, size: int):
        if size < 1:
            raise ValueError(f"a worker pool needs at least one worker, got {size}")
        reason = bmf_unavailable_reason()
        if reason is not None:
            raise RuntimeError(reason)
        import bmf
        from bmf.lib._bmf import engine

        self.size = size
        self._lock = threading.Lock()
        self._timestamps = itertools.count(1)
        self._busy = [0] * size
        builder = bmf.graph({"scheduler_count": size})
        for index in range(size):
            stream = builder.input_stream(f"worker{index}")
            stream.module(
                {"name": "JobRunner", "type": "python", "path": str(_PACKAGE_ROOT), "entry": _ENTRY},
                {}, scheduler=index,
            )
        builder.generate_config_file(mode=bmf.GraphMode.PUSHDATA, is_blocked=False, file_name="")
        # The builder's own run() prints the whole config; start the engine directly.
        with _stdout_to_stderr(), _signal_handlers_kept():
            self._graph = engine.Graph(builder.graph_config_.dump(), False, False)
            self._graph.start()
        self._closed = False

    def submit(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Future:
        """Run ``fn(*args, **kwargs)`` on the least busy worker."""
        import bmf

        future: Future = Future()
        with self._lock:
            if self._closed:
                raise RuntimeError("the worker pool is closed")
            worker = min(range(self.size), key=self._busy.__getitem__)
            self._busy[worker] += 1

        def job() -> None:
            try:
                if future.set_running_or_notify_cancel():
                    try:
                        result = fn(*args, **kwargs)
                    except BaseException as exc:  # noqa: BLE001 - handed to the caller, as concurrent.futures does
                        future.set_exception(exc)
                    else:
                        future.set_result(result)
            finally:
                with self._lock:
                    self._busy[worker] -= 1

        packet = bmf.Packet(job)
        packet.timestamp = next(self._timestamps)
        self._graph.add_input_stream_packet(f"worker{worker}", packet, False)
        return future

    def close(self) -> None:
        """Let queued jobs finish, then stop the workers."""
        import bmf

        with self._lock:
            if self._closed:
                return
            self._closed = True
        for index in range(self.size):
            self._graph.add_input_stream_packet(f"worker{index}", bmf.Packet.generate_eof_packet(), False)
        self._graph.close()
