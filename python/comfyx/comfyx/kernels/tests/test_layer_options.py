"""``--nvfp4-activation`` and ``--fp8-fast-accum`` reach comfyx's layers as one LayerOptions (and
``--compile-unet-regions`` and ``--compile-trace-cache`` the fast path's settings), from a flag or its
environment variable, and a value outside the choices is refused by name."""

from __future__ import annotations

import pytest
from comfyx import fastpath
from comfyx.cli.main import build_parser
from comfyx.kernels import LayerOptions
from comfyx.settings import tree
from comfyx.settings.spec import SettingsError, read


def fast_settings(argv: list[str], environ: dict[str, str] | None = None) -> fastpath.FastPathSettings:
    args, unknown = build_parser().parse_known_args(["serve", *argv])
    assert unknown == []
    group = next(group for group in tree.GROUPS if group.name == "fast")
    return fastpath.build(read(group, args, environ or {}, []), kernels_unavailable=None)[0]


def test_the_defaults_are_the_exact_nvfp4_product_and_fast_fp8_accumulation() -> None:
    assert fast_settings(["--fast"]).layer_options == LayerOptions(fp8_fast_accum=True, nvfp4_activation="bf16")


def test_flags_and_environment_reach_the_layer_options() -> None:
    settings = fast_settings(["--fast", "--nvfp4-activation", "fp8", "--no-fp8-fast-accum"])
    assert settings.layer_options == LayerOptions(fp8_fast_accum=False, nvfp4_activation="fp8")
    assert "NVFP4 activations fp8" in settings.describe()
    from_env = fast_settings(["--fast"], {"COMFYX_NVFP4_ACTIVATION": "fp8"})
    assert from_env.layer_options.nvfp4_activation == "fp8"


def test_an_unknown_nvfp4_activation_is_refused_by_name() -> None:
    with pytest.raises(SettingsError, match="COMFYX_NVFP4_ACTIVATION='fp4' is not allowed: --nvfp4-activation takes"):
        fast_settings(["--fast"], {"COMFYX_NVFP4_ACTIVATION": "fp4"})


def test_compile_unet_regions_is_off_unless_asked_for_by_flag_or_environment() -> None:
    assert not fast_settings(["--fast"]).compile_unet_regions
    for settings in (fast_settings(["--fast", "--compile-unet-regions"]),
                     fast_settings(["--fast"], {"COMFYX_COMPILE_UNET_REGIONS": "1"})):
        assert settings.compile_unet_regions and "compile on (UNet regions)" in settings.describe()


def test_saved_traces_are_on_unless_turned_off_by_flag_or_environment() -> None:
    assert fast_settings(["--fast"]).compile_trace_cache
    for settings in (fast_settings(["--fast", "--no-compile-trace-cache"]),
                     fast_settings(["--fast"], {"COMFYX_COMPILE_TRACE_CACHE": "0"})):
        assert not settings.compile_trace_cache and "no saved traces" in settings.describe()


def test_cuda_graphs_come_with_fast_and_ask_comfyui_for_torchs_own_allocator() -> None:
    settings = fast_settings(["--fast"])
    assert settings.compile_cuda_graphs and "CUDA graphs where compiled whole" in settings.describe()
    # ComfyUI's cuda_malloc.py picks cudaMallocAsync unless told otherwise; torch records no CUDA graph under it
    assert fastpath.comfyui_args(settings, ["--port", "8189"]) == ["--port", "8189", "--disable-cuda-malloc"]
    assert fastpath.comfyui_args(settings, ["--disable-cuda-malloc"]) == ["--disable-cuda-malloc"]
    with pytest.raises(SettingsError, match="--compile-cuda-graphs needs torch's own CUDA allocator"):
        fastpath.comfyui_args(settings, ["--cuda-malloc"])


def test_the_vae_decoder_compiles_only_when_asked_and_then_with_cuda_graphs_and_their_allocator() -> None:
    assert not fast_settings(["--fast"]).compile_vae  # not part of --fast until measured on a GPU
    settings = fast_settings(["--fast", "--compile-vae"])
    assert settings.compile_vae and "VAE decoder compiled (CUDA graphs)" in settings.describe()
    alone = fast_settings(["--compile-vae", "--compile-cuda-graphs"])  # no --compile: the decoder's graphs
    assert alone.cuda_graphs and fastpath.comfyui_args(alone, []) == ["--disable-cuda-malloc"]
    assert not fast_settings(["--compile-vae"]).cuda_graphs
    assert fast_settings([], {"COMFYX_COMPILE_VAE": "1"}).compile_vae


def test_cuda_graphs_are_off_without_compile_or_when_turned_off() -> None:
    for settings in (fast_settings(["--fast", "--no-compile-cuda-graphs"]),
                     fast_settings(["--fast"], {"COMFYX_COMPILE_CUDA_GRAPHS": "0"}),
                     fast_settings(["--compile-cuda-graphs"])):  # no --compile: nothing to replay
        assert fastpath.comfyui_args(settings, ["--cuda-malloc"]) == ["--cuda-malloc"]
        assert "CUDA graphs" not in settings.describe()
