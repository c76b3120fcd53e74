"""`comfyx serve --backend ipex` on real ComfyUI and a CPU (no Intel GPU here).

Needs torch==2.8.0 + intel-extension-for-pytorch==2.8.0 (their own virtualenv) and COMFYUI_PATH.
"""

import re

import pytest
from comfyx.backends.cpuinfo import cpu_flags
from comfyx.backends.intel_int8 import VNNI_FLAGS
from comfyx.testing.images import psnr, read_rgb
from comfyx.testing.workflows import txt2img

pytest.importorskip("intel_extension_for_pytorch", reason="IPEX is not installed (venv with torch==2.8.0 + IPEX 2.8.0)")

pytestmark = [pytest.mark.comfyui, pytest.mark.slow]

HAS_VNNI = bool(cpu_flags() & set(VNNI_FLAGS))


def render(comfyx_server, tiny_models, tmp_path, backend: str, *comfyui_args: str, env=None, comfyx_args=()):
    out = tmp_path / "-".join((backend, *comfyx_args)).replace("--", "")
    server = comfyx_server(*tiny_models.comfyui_args(), "--output-directory", str(out), *comfyui_args,
                           comfyx_args=["--backend", backend, *comfyx_args], env=env)
    run = server.run_prompt(txt2img(width=96, height=64, steps=3, seed=7))
    assert run.first("execution_error") is None, server.log_tail()
    image = run.history["outputs"]["7"]["images"][0]
    pixels = read_rgb(out / image["subfolder"] / image["filename"])
    log = server.log_tail(400)
    server.stop()
    return pixels, log


def unet_layers(log: str) -> tuple[int, int]:
    """(prepacked, eligible) from the log line of the float32 UNet's ``ipex.optimize``."""
    counts = re.search(r"optimized BaseModel \(torch.float32\).*: (\d+) of (\d+) ComfyUI layers", log)
    assert counts, log
    return int(counts[1]), int(counts[2])


def test_ipex_matches_plain_torch(comfyx_server, tiny_models, tmp_path):
    plain, plain_log = render(comfyx_server, tiny_models, tmp_path, "cpu")
    ipex, log = render(comfyx_server, tiny_models, tmp_path, "ipex")
    assert "comfyx backend ipex: CPU with IPEX 2.8.0" in log
    assert "comfyx ipex: optimized BaseModel (torch.float32) with IPEX 2.8.0: " in log
    prepacked, exposed = unet_layers(log)
    assert prepacked == exposed > 10
    assert "comfyx ipex" not in plain_log
    assert plain.shape == ipex.shape == (64, 96, 3)
    diff = abs(plain - ipex)
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


@pytest.mark.parametrize(("int8", "stop"), [
    pytest.param(False, "weights were prepacked by IPEX with other weight patches (LoRA) than this run uses",
                 id="prepacked"),
    pytest.param(True, "runs in int8 (--ipex-int8) and has no float weights: ComfyUI cannot read or patch it",
                 id="int8", marks=pytest.mark.skipif(not HAS_VNNI, reason="the CPU has no VNNI")),
])
def test_weight_patches_after_prepack_stop_instead_of_being_ignored(comfyx_server, tiny_models, tmp_path, int8, stop):
    server = comfyx_server(*tiny_models.comfyui_args(), "--output-directory", str(tmp_path / "out"),
                           comfyx_args=["--backend", "ipex", *(["--ipex-int8"] if int8 else [])])
    run = server.run_prompt(txt2img(width=64, height=64, steps=1))
    assert run.first("execution_error") is None, server.log_tail()
    # a merge patches the UNet's weights in place, as a LoRA does; IPEX's prepacked copies would
    # ignore it, and int8 layers have no float weight to read
    patched = txt2img(width=64, height=64, steps=1, seed=1)
    patched["8"] = {"class_type": "ModelMergeSimple", "inputs": {"model1": ["1", 0], "model2": ["1", 0], "ratio": 0.5}}
    patched["5"]["inputs"]["model"] = ["8", 0]
    error = server.run_prompt(patched).first("execution_error")
    assert error is not None
    assert stop in error["exception_message"], error["exception_message"]


@pytest.mark.skipif(not HAS_VNNI, reason=f"the CPU has none of {VNNI_FLAGS}")
def test_int8_matches_plain_torch_within_int8_tolerance(comfyx_server, tiny_models, tmp_path):
    plain, _ = render(comfyx_server, tiny_models, tmp_path, "cpu")
    int8, log = render(comfyx_server, tiny_models, tmp_path, "ipex", comfyx_args=["--ipex-int8"])
    quantized = re.search(r"comfyx ipex: int8: (\d+) Linear layers of BaseModel quantized "
                          r"\(IPEX dynamic quantization, oneDNN (\w+)\)", log)
    assert quantized, log
    assert int(quantized[1]) > 10 and quantized[2] in ("AVX2_VNNI", "AVX512_VNNI", "AVX512_BF16", "AMX")
    assert log.count("comfyx ipex: int8") == 1  # the diffusion model only: text encoder and VAE stay float32
    prepacked, rest = unet_layers(log)
    assert prepacked == rest > 10  # the Conv2d layers, float32
    assert plain.shape == int8.shape == (64, 96, 3)
    # int8 is lossy (per-channel int8 weights, activations quantized per call), so the bound is
    # looser than float32 IPEX's: 40 dB PSNR is an RMS error of 2.6 of 255 levels (measured
    # here: 59 dB, max 1 level).
    diff = abs(plain - int8)
    assert psnr(plain, int8) >= 40 and diff.max() <= 16, (psnr(plain, int8), diff.max())


def test_int8_without_vnni_degrades_with_a_clear_message(comfyx_server, tiny_models, tmp_path):
    # oneDNN's own limit makes this an AVX2 CPU without VNNI, whatever CPU CI has
    pixels, log = render(comfyx_server, tiny_models, tmp_path, "ipex", comfyx_args=["--ipex-int8"],
                         env={"ONEDNN_MAX_CPU_ISA": "AVX2"})
    assert ("comfyx ipex: int8 not applied, BaseModel keeps float32: int8 needs VNNI "
            "(avx512_vnni / avx_vnni / amx_int8), which oneDNN cannot use here (oneDNN ISA level AVX2; ") in log
    assert "limited by ONEDNN_MAX_CPU_ISA=AVX2)" in log
    prepacked, exposed = unet_layers(log)
    assert prepacked == exposed > 10 and "comfyx ipex: int8:" not in log  # it runs as without --ipex-int8
    assert pixels.shape == (64, 96, 3)
