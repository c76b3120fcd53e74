"""`comfyx serve --backend ipex` on real ComfyUI and a CPU (no Intel GPU here).

Needs torch==2.8.0 + intel-extension-for-pytorch==2.8.0 (their own virtualenv) and COMFYUI_PATH.
"""

import re

import numpy as np
import pytest
from comfyx.testing.workflows import txt2img
from PIL import Image

pytest.importorskip("intel_extension_for_pytorch", reason="IPEX is not installed (venv with torch==2.8.0 + IPEX 2.8.0)")

pytestmark = [pytest.mark.comfyui, pytest.mark.slow]


def render(comfyx_server, tiny_models, tmp_path, backend: str, *comfyui_args: str, env=None):
    out = tmp_path / backend
    server = comfyx_server(*tiny_models.comfyui_args(), "--output-directory", str(out), *comfyui_args,
                           comfyx_args=["--backend", backend], env=env)
    run = server.run_prompt(txt2img(width=96, height=64, steps=3, seed=7))
    assert run.first("execution_error") is None, server.log_tail()
    image = run.history["outputs"]["7"]["images"][0]
    with Image.open(out / image["subfolder"] / image["filename"]) as png:
        pixels = np.asarray(png.convert("RGB"), dtype=np.int16)
    log = server.log_tail(400)
    server.stop()
    return pixels, log


def test_ipex_matches_plain_torch(comfyx_server, tiny_models, tmp_path):
    plain, plain_log = render(comfyx_server, tiny_models, tmp_path, "cpu")
    ipex, log = render(comfyx_server, tiny_models, tmp_path, "ipex")
    assert "comfyx backend ipex: CPU with IPEX 2.8.0" in log
    assert "comfyx ipex: optimized BaseModel (torch.float32) with IPEX 2.8.0: " in log
    counts = re.search(r"optimized BaseModel \(torch.float32\).*: (\d+) of (\d+) ComfyUI layers", log)
    prepacked, exposed = counts.groups()
    assert int(prepacked) == int(exposed) > 10
    assert "comfyx ipex" not in plain_log
    assert plain.shape == ipex.shape == (64, 96, 3)
    diff = np.abs(plain - ipex)
    assert diff.max() <= 8 and diff.mean() < 0.5, (diff.max(), diff.mean())


def test_bf16_without_avx512_degrades_with_a_clear_message(comfyx_server, tiny_models, tmp_path):
    # oneDNN's own switch makes this CPU an AVX2-only one for IPEX's check, whatever CPU CI has
    _, log = render(comfyx_server, tiny_models, tmp_path, "ipex", "--bf16-unet", env={"ONEDNN_MAX_CPU_ISA": "AVX2"})
    assert ("comfyx ipex: BaseModel is left to plain torch: IPEX's bf16 weight prepack needs AVX-512 "
            "(avx512bw/vl/dq) or AVX-NE-CONVERT, which oneDNN cannot use here") in log
    assert "limited by ONEDNN_MAX_CPU_ISA=AVX2" in log


def test_version_mismatch_is_reported_not_swallowed(run_comfyx, comfyui, tmp_path):
    # the check IPEX's own import would fail on; ComfyUI 0.3.64 hides it under a bare except
    from comfyx.backends import intel

    assert intel.version_pair_problem("2.9.0", intel.ipex_version()) == (
        "intel-extension-for-pytorch 2.8.0 needs torch 2.8.*, but torch is 2.9.0")


def test_weight_patches_after_prepack_stop_instead_of_being_ignored(comfyx_server, tiny_models, tmp_path):
    server = comfyx_server(*tiny_models.comfyui_args(), "--output-directory", str(tmp_path / "out"),
                           comfyx_args=["--backend", "ipex"])
    run = server.run_prompt(txt2img(width=64, height=64, steps=1))
    assert run.first("execution_error") is None, server.log_tail()
    # a merge patches the UNet's weights in place, as a LoRA does; IPEX's prepacked copies would ignore it
    patched = txt2img(width=64, height=64, steps=1, seed=1)
    patched["8"] = {"class_type": "ModelMergeSimple", "inputs": {"model1": ["1", 0], "model2": ["1", 0], "ratio": 0.5}}
    patched["5"]["inputs"]["model"] = ["8", 0]
    error = server.run_prompt(patched).first("execution_error")
    assert error is not None
    message = error["exception_message"]
    assert "weights were prepacked by IPEX with other weight patches (LoRA) than this run uses" in message
