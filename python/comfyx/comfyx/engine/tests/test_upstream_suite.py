"""ComfyUI's own execution test suite (``tests/execution``), run against ``comfyx serve --engine bmf``.

ComfyUI's tests start ``python main.py ...`` themselves; a ``python`` on PATH that turns
exactly that command into ``comfyx serve --engine bmf -- ...`` runs all of them (lazy
inputs, expansion, ExecutionBlocker, lists, async nodes, validation, partial execution,
caching with and without ``--cache-lru``, progress isolation, history) on the engine.
The checkout is copied first: ComfyUI's tests write into it. comfyx serve's hardening is on,
except the persistent history: ComfyUI's history tests expect each server they start to
begin with an empty one.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from comfyx.testing.server import comfyx_command, free_port

pytestmark = [pytest.mark.comfyui, pytest.mark.slow]

SHIM = """#!/bin/sh
# `python main.py ARGS` -> `comfyx serve --engine bmf -- ARGS`; anything else -> this test's interpreter.
if [ "$1" = "main.py" ]; then
  shift
  exec {comfyx} serve --comfyui "$PWD" --engine bmf --no-persist-history -- "$@"
fi
exec {python} "$@"
"""


@pytest.mark.timeout(1900)  # the suite's own subprocess limit is 1800 s; pytest.ini's default is 900 s
def test_comfyui_execution_suite_passes_on_the_engine(comfyui: Path, tmp_path: Path) -> None:
    checkout = tmp_path / "ComfyUI"
    shutil.copytree(comfyui, checkout, ignore=shutil.ignore_patterns(".git", "__pycache__", "output", "temp", "user"))
    shim = tmp_path / "bin" / "python"
    shim.parent.mkdir()
    shim.write_text(SHIM.format(comfyx=" ".join(comfyx_command()), python=sys.executable))
    shim.chmod(0o755)
    env = {**os.environ, "PATH": f"{shim.parent}{os.pathsep}{os.environ['PATH']}", "PYTHONDONTWRITEBYTECODE": "1"}
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "tests/execution", "-q", "-p", "no:cacheprovider",
         "-p", "comfyx.engine.tests.upstream_plugin", "--skip-timing-checks",
         "--output_dir", str(tmp_path / "out"), "--port", str(free_port())],
        cwd=checkout, env=env, capture_output=True, text=True, timeout=1800, check=False)
    tail = "\n".join(result.stdout.splitlines()[-40:])
    assert result.returncode == 0, f"ComfyUI's execution tests failed on the engine:\n{tail}\n{result.stderr[-3000:]}"
    assert " passed" in tail and "failed" not in tail
