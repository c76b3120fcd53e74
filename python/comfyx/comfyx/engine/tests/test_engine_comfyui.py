"""The BMF engine on real ComfyUI: zero-copy, interrupts, failures, start-up errors, BMF_COMFY_FORCE,
coalesced progress_state, the model cache and txt2img images identical to stock."""

from __future__ import annotations

import os
import subprocess
import sys
import time
import urllib.parse
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from comfyx.engine.tests.support import run, start_server
from comfyx.testing.server import ComfyxServer, PromptRun
from comfyx.testing.workflows import txt2img

pytestmark = [pytest.mark.comfyui, pytest.mark.slow]


def tensors_beside_a_sleeping_branch(sleep: float = 0.6, size: int = 8) -> dict:
    """Tensor source -> pointer report and thread report while a blocking branch is still in flight, so
    the engine may hand them to workers (the thread report, an IMAGE node, goes; see the test below).

    The source waits for a short sleep, so that the long one has started by then.
    """
    return {
        "img": {"class_type": "StubImage", "inputs": {"content": "WHITE", "height": 8, "width": 8, "batch_size": 1}},
        "short": {"class_type": "ComfyxBlockingSleep", "inputs": {"image": ["img", 0], "seconds": 0.1}},
        "src": {"class_type": "ComfyxTensorSource", "inputs": {"size": size, "after": ["short", 0]}},
        "ptrs": {"class_type": "ComfyxTensorPointers",
                 "inputs": {"image": ["src", 0], "latent": ["src", 1], "mask": ["src", 2]}},
        "where": {"class_type": "ComfyxThreadName", "inputs": {"image": ["src", 0]}},
        "sleep": {"class_type": "ComfyxBlockingSleep", "inputs": {"image": ["img", 0], "seconds": sleep}},
        "preview": {"class_type": "PreviewImage", "inputs": {"images": ["sleep", 0]}},
    }


def succeeded(result: PromptRun) -> bool:
    return result.history.get("status", {}).get("status_str") == "success"


def test_tensors_cross_nodes_without_copies_and_device_nodes_stay_on_the_prompt_thread(bmf: ComfyxServer) -> None:
    result = run(bmf, tensors_beside_a_sleeping_branch())
    assert succeeded(result)
    outputs = result.history["outputs"]
    assert outputs["ptrs"]["ptrs"] == outputs["src"]["ptrs"]  # IMAGE, LATENT samples, MASK: same storage
    # Both were ready while a branch slept on a worker: the IMAGE node went to a worker too; the one that
    # takes a LATENT (device lane) stayed on the prompt thread, as the server runs on the CPU
    # (policy.may_run_on_a_worker: one OpenMP team).
    assert "prompt_worker" not in outputs["where"]["thread"][0]
    assert "prompt_worker" in outputs["ptrs"]["thread"][0]


def test_interrupt_stops_the_prompt_and_never_reruns_it(bmf: ComfyxServer, tmp_path: Path) -> None:
    prompt = {}
    for branch in range(2):
        prompt[f"img{branch}"] = {"class_type": "StubImage",
                                  "inputs": {"content": "BLACK", "height": 10 + branch, "width": 8, "batch_size": 1}}
        prompt[f"sleep{branch}"] = {"class_type": "ComfyxBlockingSleep",
                                    "inputs": {"image": [f"img{branch}", 0], "seconds": 1.5}}
        prompt[f"write{branch}"] = {"class_type": "ComfyxAppendLine", "inputs": {
            "value": [f"sleep{branch}", 0], "path": str(tmp_path / f"written{branch}.txt"), "line": "ran"}}
    result = run(bmf, prompt, interrupt_after=0.5)
    interrupted = result.first("execution_interrupted")
    assert interrupted is not None, result.event_types()
    assert "execution_success" not in result.event_types()
    time.sleep(2.0)
    assert not list(tmp_path.glob("written*.txt"))
    assert succeeded(run(bmf, tensors_beside_a_sleeping_branch(0.05)))  # the server keeps serving
    assert not list(tmp_path.glob("written*.txt"))  # and the interrupted prompt did not run again


def test_failing_branch_stops_the_prompt_and_side_effects_run_at_most_once(bmf: ComfyxServer, tmp_path: Path) -> None:
    written = tmp_path / "written.txt"
    prompt = {
        "img": {"class_type": "StubImage", "inputs": {"content": "BLACK", "height": 12, "width": 8, "batch_size": 1}},
        "fail": {"class_type": "TestSyncError", "inputs": {"value": ["img", 0]}},
        "never": {"class_type": "ComfyxAppendLine",
                  "inputs": {"value": ["fail", 0], "path": str(tmp_path / "never.txt"), "line": "never"}},
        "sleep": {"class_type": "ComfyxBlockingSleep", "inputs": {"image": ["img", 0], "seconds": 0.3}},
        "write": {"class_type": "ComfyxAppendLine", "inputs": {"value": ["sleep", 0], "path": str(written),
                                                               "line": "once"}},
    }
    result = run(bmf, prompt)
    error = result.first("execution_error")
    assert error["node_id"] == "fail" and error["node_type"] == "TestSyncError"
    assert error["exception_type"] == "RuntimeError" and error["traceback"] and error["current_inputs"]
    time.sleep(1.0)
    assert not (tmp_path / "never.txt").exists()
    assert not written.exists() or written.read_text() == "once\n"
    assert succeeded(run(bmf, tensors_beside_a_sleeping_branch(0.05)))


def test_progress_state_is_coalesced_and_ends_complete(bmf: ComfyxServer) -> None:
    prompt = {"0": {"class_type": "StubImage", "inputs": {"content": "BLACK", "height": 14, "width": 8,
                                                          "batch_size": 1}}}
    for i in range(1, 51):
        prompt[str(i)] = {"class_type": "ImageInvert", "inputs": {"image": [str(i - 1), 0]}}
    prompt["out"] = {"class_type": "PreviewImage", "inputs": {"images": ["50", 0]}}
    result = run(bmf, prompt)
    states = [data for kind, data in result.events if kind == "progress_state"]
    assert 0 < len(states) < 50  # stock sends 3 per node
    kinds = result.event_types()
    last = max(i for i, kind in enumerate(kinds) if kind == "progress_state")
    assert last < kinds.index("execution_success")
    assert {s["state"] for s in states[-1]["nodes"].values()} == {"finished"}
    assert set(states[-1]["nodes"]) == set(prompt)


def test_start_up_objects_are_left_out_of_garbage_collections(bmf: ComfyxServer) -> None:
    # ComfyUI's gc.collect() after a prompt would otherwise visit all of them (0.6 s here).
    result = run(bmf, {"gc": {"class_type": "ComfyxGcFrozen", "inputs": {}}})
    assert succeeded(result)
    assert result.history["outputs"]["gc"]["frozen"][0] > 100_000


# BMF's graph cannot load its worker module: the pool cannot start.
NO_WORKER_MODULE = """
import sys


class NoJobRunner:
    def find_spec(self, name, path=None, target=None):
        if name == "comfyx.engine.core.bmf_module":
            raise ImportError("blocked by the test's sitecustomize")


sys.meta_path.insert(0, NoJobRunner())
"""


@pytest.mark.parametrize("engine", [["--engine", "bmf"], []])
def test_a_bmf_engine_that_cannot_start_is_a_start_up_error(run_comfyx, comfyui: Path, tmp_path: Path,
                                                            engine: list[str]) -> None:
    # It used to start at the first prompt, and every prompt then fell back to stock with a warning.
    site = tmp_path / "site"
    site.mkdir()
    (site / "sitecustomize.py").write_text(NO_WORKER_MODULE)
    pythonpath = os.pathsep.join(filter(None, [str(site), os.environ.get("PYTHONPATH")]))
    result = run_comfyx("serve", *engine, "--comfyui", str(comfyui), "--", "--cpu",
                        env={**os.environ, "PYTHONPATH": pythonpath}, timeout=120)
    assert result.returncode == 2, result.stderr[-2000:]
    assert ("comfyx: error: the BMF engine could not start its 8 workers: RuntimeError: ImportError: blocked by "
            "the test's sitecustomize\n") in result.stderr
    assert "Starting server" not in result.stderr


def test_force_0_runs_on_stock_unless_the_prompt_enables_bmf(comfyui: Path, tmp_path: Path) -> None:
    server = start_server(comfyui, tmp_path, "bmf", env={"BMF_COMFY_FORCE": "0"})
    try:
        stock = run(server, tensors_beside_a_sleeping_branch(0.05))
        assert "prompt_worker" in stock.history["outputs"]["where"]["thread"][0]
        # another size: both paths share one cache, where the first prompt's report would be found
        engine = run(server, tensors_beside_a_sleeping_branch(0.61, size=9), extra_data={"enable_bmf": True})
        assert "prompt_worker" not in engine.history["outputs"]["where"]["thread"][0]
    finally:
        server.stop()


@pytest.fixture(scope="module")
def checkpoints(comfyui: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Three tiny SD1.5-architecture checkpoints (seeds 0, 1, 2)."""
    directory = tmp_path_factory.mktemp("checkpoints")
    for seed in range(3):
        path = directory / f"tiny{seed}.safetensors"
        if not path.exists():
            subprocess.run([sys.executable, "-m", "comfyx.testing.checkpoint", "--comfyui", str(comfyui),
                            "--seed", str(seed), str(path)], check=True, capture_output=True)
    return directory


@pytest.fixture(scope="module")
def with_checkpoints(comfyui: Path, checkpoints: Path,
                     tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, ComfyxServer]]:
    servers = {}
    try:
        for engine in ("stock", "bmf"):
            # one tiny checkpoint's models take 685 MB on the CPU: 1 GB keeps one besides the current prompt's
            servers[engine] = start_server(comfyui, tmp_path_factory.mktemp(engine), engine, checkpoints=checkpoints,
                                           comfyx_args=["--model-cache-size", "1GB"])
        yield servers
    finally:
        for server in servers.values():
            server.stop()


def _checkpoint_cached(result: PromptRun) -> bool:
    return "1" in result.first("execution_cached")["nodes"]


def test_model_cache_keeps_checkpoints_across_workflows(with_checkpoints: dict[str, ComfyxServer]) -> None:
    order = ["tiny0", "tiny1", "tiny0", "tiny1", "tiny2", "tiny0"]
    cached = {engine: [] for engine in with_checkpoints}
    for i, name in enumerate(order):
        prompt = txt2img(f"{name}.safetensors", seed=i, steps=1, width=64, height=64, prefix=f"switch{i}")
        for engine, server in with_checkpoints.items():
            result = run(server, prompt)
            assert succeeded(result), result.history.get("status")
            cached[engine].append(_checkpoint_cached(result))
    assert cached["stock"] == [False] * len(order)
    # --model-cache-size 1GB keeps one checkpoint's models besides the current prompt's: tiny2 evicts tiny0.
    assert cached["bmf"] == [False, False, True, True, False, False]


def _png(server: ComfyxServer, result: PromptRun) -> bytes:
    (image,) = [i for node in result.history["outputs"].values() for i in node.get("images", [])]
    query = urllib.parse.urlencode({k: image[k] for k in ("filename", "subfolder", "type")})
    with urllib.request.urlopen(f"{server.url}/view?{query}", timeout=30) as response:
        return response.read()


def test_txt2img_png_bytes_identical_to_stock(with_checkpoints: dict[str, ComfyxServer]) -> None:
    prompt = txt2img("tiny0.safetensors", seed=1234, steps=3, width=64, height=64, prefix="identical")
    images = {engine: _png(server, run(server, prompt)) for engine, server in with_checkpoints.items()}
    assert images["bmf"] == images["stock"]
    assert images["bmf"][:8] == b"\x89PNG\r\n\x1a\n"

