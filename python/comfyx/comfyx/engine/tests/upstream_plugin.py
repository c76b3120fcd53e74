"""pytest plugin for running ComfyUI's own ``tests/execution`` against ``comfyx serve``.

ComfyUI's client gives a starting server 5 tries of 4 s; a 2-core CI machine can need more.
This makes its ``ComfyClient.connect`` wait (up to 5 minutes) until the port answers.
"""

from __future__ import annotations

import socket
import time

import pytest

STARTUP_SECONDS = 300


def _wait_for_port(host: str, port: int) -> None:
    deadline = time.monotonic() + STARTUP_SECONDS
    while time.monotonic() < deadline:
        try:
            with socket.create_connection((host, int(port)), timeout=2):
                return
        except OSError:
            time.sleep(0.5)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for module in {item.module for item in items if item.module is not None}:
        client = getattr(module, "ComfyClient", None)
        if client is None or getattr(client.connect, "_comfyx_waits", False):
            continue
        connect = client.connect

        def patient_connect(self, listen="127.0.0.1", port=8188, *args, _connect=connect, **kwargs):
            _wait_for_port(listen, port)
            return _connect(self, listen, port, *args, **kwargs)

        patient_connect._comfyx_waits = True
        client.connect = patient_connect
