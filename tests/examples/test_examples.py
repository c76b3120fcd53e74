"""The example workflows under examples/ run on real ComfyUI v0.3.64 (on the CPU, with tiny generated models
in place of the ones they name, at 64x64 and one step): txt2img through `comfyx run`, as examples/README.md
shows it, and all five on one `comfyx serve`."""

from __future__ import annotations

import copy
import json
import subprocess
import sys
from pathlib import Path

import pytest
from comfyx.comfyui.headless import check_api_workflow

REPO = Path(__file__).resolve().parents[2]
EXAMPLES = REPO / "examples"
NAMES = ("txt2img", "img2img", "upscale", "compile", "tpu-warmup")
UPSCALE_MODEL = "comfyx-esrgan-tiny.safetensors"

pytestmark = [pytest.mark.comfyui, pytest.mark.slow]


def load(name: str) -> dict:
    return check_api_workflow(json.loads((EXAMPLES / f"{name}.json").read_text()))


def small(workflow: dict, checkpoint: str) -> dict:
    """The workflow with the test's models, 64x64 latents and one sampler step (for the CPU)."""
    workflow = copy.deepcopy(workflow)
    for node in workflow.values():
        inputs = node["inputs"]
        if "ckpt_name" in inputs:
            inputs["ckpt_name"] = checkpoint
        if node["class_type"] == "UpscaleModelLoader":
            inputs["model_name"] = UPSCALE_MODEL
        if node["class_type"] in ("EmptyLatentImage", "ComfyxTPUManualWarmup"):
            inputs.update(width=64, height=64)
        if node["class_type"] == "KSampler":
            inputs["steps"] = 1
    return workflow


def test_every_example_is_an_api_workflow_and_documented() -> None:
    assert sorted(p.stem for p in EXAMPLES.glob("*.json")) == sorted(NAMES)
    readme = (EXAMPLES / "README.md").read_text()
    for name in NAMES:
        load(name)
        assert f"`{name}.json`" in readme


@pytest.fixture(scope="module")
def models(comfyui: Path, tiny_models, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An extra_model_paths config with the tiny checkpoint and a tiny ESRGAN."""
    root = tmp_path_factory.mktemp("example-models")
    subprocess.run([sys.executable, "-m", "comfyx.bench.models", "--comfyui", str(comfyui), "--out", str(root),
                    "esrgan-tiny"], check=True, capture_output=True)
    config = root / "examples.yaml"
    config.write_text(f"examples:\n  base_path: {root}\n  upscale_models: upscale_models\n"
                      f"  checkpoints: {tiny_models.root / 'checkpoints'}\n")
    return config


@pytest.fixture(scope="module")
def input_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from PIL import Image

    directory = tmp_path_factory.mktemp("input")
    Image.new("RGB", (64, 64), (200, 120, 40)).save(directory / "example.png")
    return directory


def test_txt2img_with_comfyx_run(run_comfyx, comfyui: Path, tiny_models, models: Path, tmp_path: Path) -> None:
    workflow = tmp_path / "txt2img.json"
    workflow.write_text(json.dumps(small(load("txt2img"), tiny_models.checkpoint)))
    result = run_comfyx("run", str(workflow), "--output-dir", str(tmp_path / "out"), "--comfyui", str(comfyui),
                        "--", "--cpu", "--extra-model-paths-config", str(models), timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    (written,) = result.stdout.split()
    assert Path(written).is_file() and Path(written).name.startswith("txt2img")


def test_every_example_runs(comfyx_server, tiny_models, models: Path, input_dir: Path, tmp_path: Path) -> None:
    # PyTorch's attention: ComfyUI's CPU default asks psutil for free memory inside the model,
    # which the compile example's dynamo cannot trace
    server = comfyx_server("--extra-model-paths-config", str(models), "--input-directory", str(input_dir),
                           "--output-directory", str(tmp_path / "out"), "--use-pytorch-cross-attention")
    for name in NAMES:
        run = server.run_prompt(small(load(name), tiny_models.checkpoint), timeout=900)
        assert run.error() is None and run.first("execution_success") is not None, (name, server.log_tail())
        outputs = run.history["outputs"]
        if name == "upscale":
            assert image_size(tmp_path / "out" / outputs["save"]["images"][0]["filename"]) == (256, 256)  # 4x
        if name == "compile":
            stats = outputs["stats"]["stats"][0]
            # sampling ran compiled: the UNet traced by Dynamo, or into a saved trace (the node's default)
            assert stats["frames_compiled"] + stats["traces_saved"] + stats["traces_loaded"] >= 1, stats
        if name == "tpu-warmup":
            assert outputs["warmup"]["text"][0].startswith("nothing done: the TPU backend is not running")


def image_size(path: Path) -> tuple[int, int]:
    from PIL import Image

    with Image.open(path) as image:
        return image.size
