"""The nodes in a real ``comfyx serve``: the tiny SD1.5 txt2img workflow with Torch Compile
Speed Settings → Apply Torch Compile between the checkpoint loader and KSampler, and the
Stats node after sampling. A restarted server with the same comfyx cache dir starts warm: it loads the
UNet's saved trace (the node's default), or, with saved traces off, torch's caches.
"""

from __future__ import annotations

import pytest

from comfyx.testing.workflows import txt2img

pytestmark = [pytest.mark.comfyui, pytest.mark.slow]

# ComfyUI's CPU default (split attention) asks psutil for free memory inside the model,
# which dynamo cannot trace; PyTorch attention is what ComfyUI uses on GPUs anyway
COMFYUI_ARGS = ("--use-pytorch-cross-attention",)


def compiled_workflow(seed: int, trace_cache: bool = True) -> dict:
    workflow = txt2img(width=64, height=64, steps=2, seed=seed)
    workflow["10"] = {
        "class_type": "ComfyxTorchCompileSpeedSettings",
        "inputs": {
            "backend": "inductor", "fullgraph": False, "mode": "default", "dynamic": False,
            "dynamo_cache_size_limit": 64, "compile_transformer_blocks_only": True, "reuse_if_similar": True,
            "experimental_ptx": False, "ptx_fast_math": False, "warmup_runs": 1, "compile_trace_cache": trace_cache,
        },
    }  # fmt: skip
    workflow["11"] = {
        "class_type": "ComfyxApplyTorchCompile",
        "inputs": {"model": ["1", 0], "torch_compile_args": ["10", 0]},
    }
    workflow["5"]["inputs"]["model"] = ["11", 0]
    workflow["12"] = {"class_type": "ComfyxTorchCompileStats", "inputs": {"model": ["11", 0], "after": ["5", 0]}}
    return workflow


def stats(server, seed: int, trace_cache: bool = True) -> dict:
    """Run the compiled workflow; the Stats node's metrics as it showed them."""
    run = server.run_prompt(compiled_workflow(seed, trace_cache), timeout=600)
    assert run.first("execution_error") is None, (run.first("execution_error"), server.log_tail())
    outputs = run.history["outputs"]
    assert outputs["7"]["images"], outputs
    return outputs["12"]["stats"][0]


@pytest.mark.parametrize("trace_cache", [True, False], ids=["saved-trace", "dynamo"])
def test_workflow_compiles_reuses_and_restarts_warm(comfyx_server, tiny_models, tmp_path, monkeypatch, trace_cache):
    cache = tmp_path / "cache"
    for variable in ("TORCHINDUCTOR_CACHE_DIR", "TRITON_CACHE_DIR"):  # the comfyx cache dir must hold them
        monkeypatch.delenv(variable, raising=False)
    env = {"COMFYX_CACHE_DIR": str(cache)}
    server = comfyx_server(*tiny_models.comfyui_args(), *COMFYUI_ARGS, env=env)
    first = stats(server, seed=1, trace_cache=trace_cache)
    # the UNet, compiled whole: traced once, by Dynamo or into a saved trace
    assert (first["frames_compiled"], first["traces_saved"]) == ((0, 1) if trace_cache else (1, 0)), first
    assert first["graphs"] >= 1 and not first["caches_warm"], first
    assert first["recompiles"] == 0 and first["steady_steps"] >= 1, first

    # a new seed re-runs KSampler on the same compiled model: nothing compiles, and with the model loaded as
    # before its fingerprint is not taken again (it cost 0.13-0.15 s a prompt on an H100 host)
    second = stats(server, seed=2, trace_cache=trace_cache)
    assert (second["frames_compiled"], second["traces_saved"]) == (first["frames_compiled"], first["traces_saved"])
    assert second["fingerprints_taken"] == first["fingerprints_taken"] == (1 if trace_cache else 0), second
    assert second["steady_steps"] > first["steady_steps"] and second["recompiles"] == 0, second
    log = server.log_tail(400)
    assert "comfyx compile: UNetModel [default, 1 module(s)] at 2x4x8x8" in log, log
    assert "(median of" in log  # the summary logged after each sampling run
    server.stop()
    assert any((cache / "compile" / ("traces" if trace_cache else "artifacts")).iterdir())

    restarted = comfyx_server(*tiny_models.comfyui_args(), *COMFYUI_ARGS, env=env)
    warm = stats(restarted, seed=1, trace_cache=trace_cache)
    assert warm["caches_warm"] and warm["frames_compiled"] == (0 if trace_cache else 1), warm
    if trace_cache:  # nothing traced or compiled: the saved trace ran
        assert (warm["traces_loaded"], warm["traces_saved"], warm["aot_cache_misses"]) == (1, 0, 0), warm
    else:
        assert warm["fx_cache_misses"] == 0 and warm["artifacts_loaded"] >= 1, warm
        assert warm["aot_cache_hits"] >= 1 and warm["aot_cache_bypasses"] == 0, warm
