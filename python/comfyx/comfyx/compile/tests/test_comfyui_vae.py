"""``--compile-vae`` in a real ``comfyx serve``: the tiny SD1.5 txt2img workflow decodes through the VAE's
compiled decoder (ComfyUI's Decoder at the SD VAE's real widths), with the eager decode's image, traced once
for both prompts; a restarted server on the same comfyx cache dir loads the saved trace instead of tracing."""

from __future__ import annotations

import pytest

from comfyx.bench.quality import psnr_png
from comfyx.testing.workflows import txt2img

pytestmark = [pytest.mark.comfyui, pytest.mark.slow]

# ComfyUI's CPU default (split attention) asks psutil for free memory inside the VAE's attention,
# which dynamo cannot trace; PyTorch attention is what ComfyUI uses on GPUs anyway
COMFYUI_ARGS = ("--use-pytorch-cross-attention",)
TRACED = "traced and compiled Decoder as one graph"
LOADED = "Decoder runs the trace saved in"


def png(server, seed: int) -> bytes:
    run = server.run_prompt(txt2img(seed=seed), timeout=600)
    assert run.first("execution_error") is None, (run.first("execution_error"), server.log_tail())
    return server.output_bytes(run.history["outputs"]["7"]["images"][0])


def test_the_vae_decoder_compiles_once_and_a_restart_loads_its_trace(comfyx_server, tiny_models, tmp_path):
    eager = comfyx_server(*tiny_models.comfyui_args(), *COMFYUI_ARGS)
    reference = png(eager, seed=1)
    assert "the VAE's decoder" not in eager.log_tail(400)
    eager.stop()

    env = {"COMFYX_CACHE_DIR": str(tmp_path / "cache")}
    compiled = comfyx_server(*tiny_models.comfyui_args(), *COMFYUI_ARGS, comfyx_args=["--compile-vae"], env=env)
    first = png(compiled, seed=1)
    quality = psnr_png(reference, first)
    assert quality is not None and quality >= 40, quality  # inf: identical pixels
    png(compiled, seed=2)
    log = compiled.log_tail(400)
    assert "the VAE's decoder (AutoencoderKL) compiles at its first decode" in log, log
    assert log.count(TRACED) == 1 and LOADED not in log, log
    compiled.stop()
    assert any((tmp_path / "cache" / "compile" / "traces").iterdir())

    restarted = comfyx_server(*tiny_models.comfyui_args(), *COMFYUI_ARGS, comfyx_args=["--compile-vae"], env=env)
    assert png(restarted, seed=1) == first
    log = restarted.log_tail(400)
    assert LOADED in log and TRACED not in log, log
