"""Checks that run in a process of their own (real ComfyUI's modules hold global state) and print their
findings as one JSON line, ``REPORT {...}``, for the test to assert on."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Mapping, Sequence

PREFIX = "REPORT "


def run_for_report(args: Sequence[str], timeout: float, env: Mapping[str, str] | None = None) -> dict:
    """Run ``python ARGS``; the JSON of the last ``REPORT`` line it printed. Fails the test (with the process's
    output) when it exits non-zero or prints none."""
    proc = subprocess.run([sys.executable, *args], capture_output=True, text=True, timeout=timeout, check=False,
                          env=None if env is None else dict(env))
    lines = [line for line in proc.stdout.splitlines() if line.startswith(PREFIX)]
    assert proc.returncode == 0 and lines, proc.stdout[-3000:] + proc.stderr[-6000:]
    return json.loads(lines[-1].removeprefix(PREFIX))
