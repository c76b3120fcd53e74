"""Which engine ``comfyx serve`` / ``comfyx run`` install: BMF by default, stock with a warning when BMF is missing.

"Missing" is real here: a ``sitecustomize`` on the server's ``PYTHONPATH`` makes ``import bmf``
fail, as a missing FFmpeg 4 library does, before anything of comfyx or ComfyUI runs.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from comfyx.cli.main import build_parser
from comfyx.engine import DEFAULT_ENGINE, unavailable_reason
from comfyx.engine.tests.support import run, start_server
from comfyx.engine.tests.test_engine_comfyui import succeeded, tensors_beside_a_sleeping_branch
from comfyx.testing.server import PromptRun
from comfyx.testing.settings import startup

BLOCKED = "blocked by the test's sitecustomize"
WARNING = "warning: the BMF engine cannot run here"

BLOCK_BMF = f'''
import sys


class NoBmf:
    def find_spec(self, name, path=None, target=None):
        if name == "bmf" or name.startswith("bmf."):
            raise ImportError("{BLOCKED}")


sys.meta_path.insert(0, NoBmf())
'''

needs_bmf = pytest.mark.skipif(unavailable_reason("bmf") is not None, reason=str(unavailable_reason("bmf")))


def without_bmf(tmp_path: Path) -> dict[str, str]:
    """Environment for a subprocess in which ``import bmf`` fails."""
    site = tmp_path / "no-bmf"
    site.mkdir()
    (site / "sitecustomize.py").write_text(BLOCK_BMF)
    return {"PYTHONPATH": os.pathsep.join(filter(None, [str(site), os.environ.get("PYTHONPATH")]))}


def ran_on_a_bmf_worker(result: PromptRun) -> bool:
    """The thread report of :func:`tensors_beside_a_sleeping_branch` ran off the prompt worker thread."""
    return "prompt_worker" not in result.history["outputs"]["where"]["thread"][0]


@needs_bmf
def test_the_default_engine_is_bmf() -> None:
    args, _ = build_parser().parse_known_args(["serve"])
    assert args.engine is None
    assert DEFAULT_ENGINE == "bmf"
    assert startup().settings.engine.name == "bmf" and not any("BMF" in note for note in startup().notes)
    assert startup("--engine", "stock").settings.engine.name == "stock"


@needs_bmf
@pytest.mark.comfyui
@pytest.mark.slow
def test_serve_without_engine_runs_prompts_on_bmf(comfyui: Path, tmp_path: Path) -> None:
    server = start_server(comfyui, tmp_path, None)
    try:
        result = run(server, tensors_beside_a_sleeping_branch())
        assert succeeded(result)
        assert ran_on_a_bmf_worker(result)
        assert WARNING not in server.log_tail(400)
    finally:
        server.stop()


@pytest.mark.comfyui
@pytest.mark.slow
def test_without_bmf_the_default_falls_back_to_stock_with_one_warning(comfyui: Path, tmp_path: Path,
                                                                         run_comfyx) -> None:
    env = without_bmf(tmp_path)
    server = start_server(comfyui, tmp_path / "server", None, env=env)
    try:
        result = run(server, tensors_beside_a_sleeping_branch(0.05))
        assert succeeded(result)
        assert not ran_on_a_bmf_worker(result)
        log = server.log_tail(400)
        assert log.count(WARNING) == 1
        assert f"cannot import bmf: {BLOCKED}" in log
        assert "prompts run on the BMF engine" not in log
    finally:
        server.stop()
    doctor = run_comfyx("doctor", "--json", env={**os.environ, **env, "COMFYUI_PATH": str(comfyui)})
    report = json.loads(doctor.stdout)
    assert report["default_engine"] == "stock"
    assert report["engines"]["bmf"] == {"available": False, "reason": f"cannot import bmf: {BLOCKED}"}


@pytest.mark.comfyui
def test_explicit_bmf_without_bmf_is_an_error(comfyui: Path, tmp_path: Path, run_comfyx) -> None:
    env = {**os.environ, **without_bmf(tmp_path)}
    workflow = tmp_path / "workflow.json"
    workflow.write_text(json.dumps({
        "1": {"class_type": "EmptyImage", "inputs": {"width": 8, "height": 8, "batch_size": 1, "color": 0}},
        "2": {"class_type": "PreviewImage", "inputs": {"images": ["1", 0]}},
    }))
    for command in (["serve", "--engine", "bmf", "--comfyui", str(comfyui), "--", "--cpu"],
                    ["run", "--engine", "bmf", "--comfyui", str(comfyui), str(workflow)]):
        result = run_comfyx(*command, env=env, timeout=120)
        assert result.returncode == 2, result.stderr
        assert f"cannot import bmf: {BLOCKED}" in result.stderr
        assert WARNING not in result.stderr
