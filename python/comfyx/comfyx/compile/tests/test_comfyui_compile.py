"""The compile nodes on real ComfyUI (CPU, tiny SD1.5-architecture UNet, ComfyUI's KSampler).

One scenario process compiles once and checks everything that follows from it; a second
process with the same cache directory must start warm. Inductor's CPU backend compiles
C++ with the system compiler, so the cold compile takes a minute or two on 2 cores.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

from comfyx.testing.reports import run_for_report

pytestmark = [pytest.mark.comfyui, pytest.mark.slow]

SCENARIO = Path(__file__).with_name("scenario.py")


def run_scenario(comfyui: Path, name: str, cache: Path, *args: str) -> dict:
    env = dict(os.environ)
    for variable in ("TORCHINDUCTOR_CACHE_DIR", "TRITON_CACHE_DIR"):  # the comfyx cache dir must hold them
        env.pop(variable, None)
    return run_for_report([str(SCENARIO), "--comfyui", str(comfyui), "--cache-dir", str(cache), name, *args],
                          timeout=840, env=env)


@pytest.fixture(scope="module")
def cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("comfyx-cache")


@pytest.fixture(scope="module")
def report(comfyui: Path, cache: Path) -> dict:
    return run_scenario(comfyui, "full", cache)


def test_compiled_sampling_ran_dynamo_graphs_and_matches_eager(report):
    first = report["first"]["metrics"]
    # one UNet, one compile: the warmup forward must not cause a second one
    assert first["model"] == "UNetModel [default, 1 module(s)]", first
    assert first["frames_compiled"] == 1 and first["graphs"] >= 1, first
    assert first["fx_cache_misses"] >= 1 and not first["caches_warm"], first  # a fresh cache dir: cold
    assert first["first_step_s"] > 0 and first["warmup_runs"] == 1
    assert first["steady_steps"] >= 1 and first["steady_step_ms"] > 0  # the step after the compiling one
    assert report["first"]["rel_err"] < 1e-4


def test_same_model_and_config_does_not_recompile(report):
    assert report["second_prompt"] == {"frames": 0, "same_compiled": True}


def test_changed_config_compiles_afresh(report):
    changed = report["changed_config"]
    assert changed["frames"] >= 1 and not changed["same_compiled"]
    assert changed["rel_err"] < 1e-4


def test_the_model_other_nodes_share_stays_eager(report):
    assert report["original"] == {
        "frames": 0,
        "identical_to_reference": True,
        "has_compile_wrapper": False,
        "diffusion_model_class": "UNetModel",
    }


def test_weight_patches_reach_the_compiled_model(report):
    lora = report["lora"]
    assert lora["rel_change_vs_unpatched"] > 1e-2  # the patch changed the result...
    assert lora["rel_err_vs_eager_patched"] < 1e-4  # ...as it does in eager
    # weights are graph inputs; ModelPatcher's patched weights have requires_grad=False where
    # these random ones have True, a guard dynamo checks: one recompile, then none
    assert lora["frames"] <= 1
    traced = report["lora_traced"]
    assert traced["rel_change_vs_unpatched"] > 1e-2 and traced["rel_err_vs_eager_patched"] < 1e-4, traced
    assert traced["traces_saved"] >= 1, traced


def test_a_patch_found_by_block_position_reaches_that_block_compiled(report):
    # compile_unet_regions: the spatial transformers compile per position once transformer_options
    # carry patches (4 of them, besides the ResNet blocks' 2 shapes), and a patch found by position
    # reaches its block
    patch = report["position_patch"]
    assert patch["frames"] == 6, patch
    assert patch["rel_change_vs_unpatched"] > 1e-2, patch
    assert patch["rel_err_vs_eager_patched"] < 1e-4, patch


def test_second_process_with_the_same_cache_dir_starts_warm(comfyui, cache, report):
    assert any((cache / "compile" / "inductor" / "fxgraph").iterdir())
    assert any((cache / "compile" / "artifacts").iterdir())
    warm = run_scenario(comfyui, "warm", cache)["metrics"]
    assert warm["caches_warm"], warm
    assert warm["fx_cache_hits"] >= 1 and warm["fx_cache_misses"] == 0, warm
    assert warm["artifacts_loaded"] >= 1, warm
    # the restart skipped AOTAutograd's tracing too (counts, not times: the machine is shared)
    assert warm["aot_cache_hits"] >= 1 and warm["aot_cache_bypasses"] == 0, warm


def test_restart_loads_the_saved_trace_and_samples_the_same(comfyui, tmp_path):
    # speed mode on a tiny SDXL UNet whose attention runs inside torch's sdpa_kernel, as ComfyUI's does on
    # CUDA: the cold process traces the UNet once and saves the trace; the restart loads it (Dynamo
    # traces nothing, nothing is compiled or looked up in AOTAutograd's cache) and samples the same latent
    cache = tmp_path / "cache"
    cold = run_scenario(comfyui, "restart", cache, "--latent", str(tmp_path / "cold.pt"))["metrics"]
    assert (cold["traces_saved"], cold["traces_loaded"]) == (1, 0), cold
    assert len(list((cache / "compile" / "traces").glob("*.trace"))) == 1
    warm = run_scenario(comfyui, "restart", cache, "--latent", str(tmp_path / "warm.pt"))["metrics"]
    assert (warm["traces_saved"], warm["traces_loaded"]) == (0, 1), warm
    assert warm["frames_compiled"] == 0 and warm["aot_cache_misses"] == 0 and warm["aot_cache_hits"] == 0, warm
    assert warm["recompiles"] == 0, warm
    assert torch.equal(torch.load(tmp_path / "cold.pt"), torch.load(tmp_path / "warm.pt"))


def test_a_flux_compiled_per_block_saves_a_trace_per_block_type_and_restarts_from_them(comfyui, tmp_path):
    # ComfyUI's Flux at width 64 with 2 double and 2 single blocks, compiled block by block (the node's
    # default): one saved trace per block class serves all blocks of that class
    cache = tmp_path / "cache"
    cold = run_scenario(comfyui, "flux-restart", cache, "--latent", str(tmp_path / "cold.pt"))
    assert cold["metrics"]["model"] == "Flux [speed, 4 module(s)]", cold
    assert (cold["metrics"]["traces_saved"], cold["metrics"]["traces_loaded"]) == (2, 0), cold
    assert cold["rel_err"] < 1e-4, cold  # against the same model sampled eagerly
    warm = run_scenario(comfyui, "flux-restart", cache, "--latent", str(tmp_path / "warm.pt"))["metrics"]
    assert (warm["traces_saved"], warm["traces_loaded"], warm["frames_compiled"]) == (0, 2, 0), warm
    assert torch.equal(torch.load(tmp_path / "cold.pt"), torch.load(tmp_path / "warm.pt"))


def test_restart_without_the_trace_cache_takes_aotautograd_and_fx_graph_from_the_cache(comfyui, tmp_path):
    # the same without saved traces: Dynamo traces the UNet again, and the restart must load AOTAutograd's
    # entry and the compiled graph, and sample exactly what the first process sampled
    cache = tmp_path / "cache"
    cold = run_scenario(comfyui, "restart", cache, "--latent", str(tmp_path / "cold.pt"), "--no-trace-cache")["metrics"]
    assert cold["fx_cache_misses"] >= 1 and cold["fx_cache_hits"] == 0, cold
    assert cold["aot_cache_bypass_reasons"] == [] and cold["aot_cache_bypasses"] == 0, cold
    assert cold["aot_cache_misses"] >= 1 and cold["aot_cache_saves"] >= 1, cold
    warm = run_scenario(comfyui, "restart", cache, "--latent", str(tmp_path / "warm.pt"), "--no-trace-cache")["metrics"]
    assert warm["traces_loaded"] == 0, warm
    assert warm["aot_cache_bypass_reasons"] == [] and warm["aot_cache_bypasses"] == 0, warm
    assert warm["aot_cache_hits"] >= 1 and warm["aot_cache_misses"] == 0, warm
    assert warm["fx_cache_hits"] >= 1 and warm["fx_cache_misses"] == 0, warm
    assert warm["frames_compiled"] == cold["frames_compiled"] and warm["recompiles"] == 0, warm
    assert torch.equal(torch.load(tmp_path / "cold.pt"), torch.load(tmp_path / "warm.pt"))


def test_whole_unet_recompiles_once_across_three_resolutions(comfyui, tmp_path):
    # torch's automatic dynamic: the second resolution recompiles the UNet with its sizes
    # dynamic; the third, and the first again, run the graphs already there
    report = run_scenario(comfyui, "resolutions", tmp_path / "cache", "--no-trace-cache")
    first, second, third, first_again = report["steps"]
    assert first["compiled"] and not first["recompile_reasons"], report
    assert len(second["recompile_reasons"]) == 1 and "size mismatch" in second["recompile_reasons"][0], report
    assert third["recompile_reasons"] == [] and first_again["recompile_reasons"] == [], report
    metrics = report["metrics"]
    assert metrics["model"] == "UNetModel [speed, 1 module(s)]", metrics
    assert metrics["recompiles"] == 1 and metrics["recompile_reasons"] == second["recompile_reasons"], metrics
    assert len(metrics["steady_step_ms_by_shape"]) == 3, metrics


def test_saved_traces_specialise_each_resolution_and_reuse_the_first(comfyui, tmp_path):
    # with saved traces (the default) each resolution gets a trace of its own, specialised, and the first
    # resolution again runs the trace made for it
    report = run_scenario(comfyui, "resolutions", tmp_path / "cache")
    metrics = report["metrics"]
    assert metrics["traces_saved"] == 3 and metrics["traces_loaded"] == 0, metrics
    assert metrics["frames_compiled"] == 0 and metrics["recompiles"] == 0, metrics
    assert len(metrics["steady_step_ms_by_shape"]) == 3, metrics
    assert len(list((tmp_path / "cache" / "compile" / "traces").glob("*.trace"))) == 3


def test_unet_regions_share_a_graph_per_shape_and_compile_each_resolution_specialised(comfyui, tmp_path):
    # compile_unet_regions: the tiny SDXL UNet's spatial transformers (input, middle, two output)
    # have one shape and its ResNet blocks two: three graphs at each resolution, specialised (a UNet's
    # levels differ in shape, which automatic dynamic would turn into shape-generic graphs); the
    # first again reuses its own
    report = run_scenario(comfyui, "resolutions", tmp_path / "cache", "--regions")
    steps = report["steps"]
    assert [len(step["compiled"]) for step in steps] == [3, 3, 3, 0], report
    for step in steps[:3]:
        assert sorted(frame.rsplit("/", 1)[1] for frame in step["compiled"]) == [
            "attention.py:907)", "openaimodel.py:232)", "openaimodel.py:232)"], report  # fmt: skip
        assert all("size mismatch" in reason for reason in step["recompile_reasons"]), report
    assert steps[3]["recompile_reasons"] == [], report
    metrics = report["metrics"]
    assert metrics["model"] == "UNetModel [speed, 9 module(s)]" and metrics["frames_compiled"] == 9, metrics
    assert len(metrics["steady_step_ms_by_shape"]) == 3, metrics
