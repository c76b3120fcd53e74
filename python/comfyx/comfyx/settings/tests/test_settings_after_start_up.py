"""After start-up, comfyx reads no setting from the environment.

A real ``comfyx serve`` (BMF engine, real ComfyUI) runs with every read of ``os.environ`` recorded
(``envwatch/sitecustomize.py``) and with comfyx's variables set, so that a late read would find
something. Start-up reads them (the check that the recording works); then prompts run through every
place that used to read one late — a model through the kernels (their import read COMFYX_FP8_FAST_ACCUM),
Apply Torch Compile (the compile caches read COMFYX_CACHE_DIR and Triton's variable), comfyx System Info
(``comfyx doctor``'s report read the directories), the TPU nodes, parallel branches on BMF workers — and
no comfyx variable, and no variable through comfyx's code, may be read while serving.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from comfyx.testing.server import ComfyxServer
from comfyx.testing.workflows import txt2img

pytestmark = [pytest.mark.comfyui, pytest.mark.slow]

WATCH = Path(__file__).with_name("envwatch")


def workflow(checkpoint: str) -> dict:
    """txt2img through Quantize Model, beside System Info, Apply Torch Compile and the TPU nodes."""
    prompt = txt2img(checkpoint, steps=1, prefix="env")
    prompt["q"] = {"class_type": "ComfyxQuantizeModel", "inputs": {"model": ["1", 0], "format": "fp8",
                                                                  "layers": "blocks"}}
    prompt["5"]["inputs"]["model"] = ["q", 0]
    prompt["info"] = {"class_type": "ComfyxSystemInfo", "inputs": {"format": "json"}}
    prompt["cs"] = {"class_type": "ComfyxTorchCompileSpeedSettings", "inputs": {
        "backend": "inductor", "fullgraph": False, "mode": "speed", "dynamic": False, "dynamo_cache_size_limit": 64,
        "compile_transformer_blocks_only": True, "reuse_if_similar": True, "experimental_ptx": False,
        "ptx_fast_math": True, "warmup_runs": 1}}
    prompt["ca"] = {"class_type": "ComfyxApplyTorchCompile",
                    "inputs": {"model": ["1", 0], "torch_compile_args": ["cs", 0]}}
    prompt["tpu"] = {"class_type": "ComfyxTPUManualWarmup", "inputs": {"model": ["ca", 0], "width": 64, "height": 64,
                                                                      "batch_size": 1, "cfg": 7.0}}
    prompt["xla"] = {"class_type": "ComfyxTPUCompilationCache", "inputs": {"action": "info"}}
    return prompt


def test_no_setting_is_read_from_the_environment_after_start_up(comfyui: Path, tiny_models, tmp_path: Path) -> None:
    reads = tmp_path / "env-reads.jsonl"
    env = {
        "PYTHONPATH": os.pathsep.join(filter(None, [str(WATCH), os.environ.get("PYTHONPATH")])),
        "COMFYX_TEST_ENV_READS": str(reads),
        # comfyx's variables, set: a read after start-up would find each
        "COMFYX_BMF_WORKERS": "3", "COMFYX_MODEL_CACHE_SIZE": "2GB", "COMFYX_HISTORY_SIZE": "50",
        "COMFYX_FP8_FAST_ACCUM": "0", "COMFYX_NVFP4_ACTIVATION": "fp8", "COMFYX_TPU_SYNC_STEPS": "2",
        "COMFYX_CACHE_DIR": str(tmp_path / "cache"), "COMFYX_DATA_DIR": str(tmp_path / "data"),
    }
    server = ComfyxServer(comfyui, ["--cpu", *tiny_models.comfyui_args(), "--output-directory", str(tmp_path / "out")],
                          comfyx_args=["--engine", "bmf"], log_path=tmp_path / "server.log", env=env)
    server.start()
    try:
        run = server.run_prompt(workflow(tiny_models.checkpoint), timeout=600)
        assert run.error() is None and run.first("execution_success") is not None, server.log_tail()
        report = json.loads(run.history["outputs"]["info"]["text"][0])
    finally:
        server.stop()
    lines = [json.loads(line) for line in reads.read_text().splitlines()]
    late = [line for line in lines if line["phase"] == "serving" and line["key"] is not None]
    assert late == [], "read from the environment after start-up:\n" + "\n".join(map(json.dumps, late))
    # and the recording works: it saw start-up read comfyx's variables, and the server start listening
    start_up = {line["key"] for line in lines if line["phase"] == "start-up"}
    assert {"COMFYX_BMF_WORKERS", "COMFYX_CACHE_DIR"} <= start_up
    assert any(line["key"] is None for line in lines), "the server never started listening"
    # System Info reports the settings the process started with, not what the environment says now
    assert report["settings"]["changed"]["--bmf-workers"] == "3"
    assert report["paths"]["comfyx_cache"] == str(tmp_path / "cache")
