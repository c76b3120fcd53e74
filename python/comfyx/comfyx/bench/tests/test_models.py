"""Which generated model set a bench run finds, the files its workflows load, and ``--flux-blocks``' values."""

from __future__ import annotations

import argparse
import json

import pytest
from comfyx.bench import workflows
from comfyx.bench.models import FILE_FORMATS, ON_DEMAND, flux_blocks, in_manifest


def test_a_flux_model_of_another_depth_is_not_taken_for_the_one_asked(tmp_path):
    # a model directory that holds Flux at 4+8 blocks: a run at 19+38 must generate its own
    files = {"diffusion_model": "comfyx-flux-4x8.safetensors", "vae": "comfyx-flux-ae.safetensors"}
    fp8 = {"fp8": {"diffusion_model": "comfyx-flux-4x8-fp8.safetensors"}}
    (tmp_path / "manifest.json").write_text(json.dumps({"flux": {"files": files, "variants": fp8},
                                                        "sdxl": {"files": {}, "variants": {"fp8": {}}}}))
    assert in_manifest(tmp_path, "flux", (4, 8))
    assert not in_manifest(tmp_path, "flux", (19, 38))
    assert in_manifest(tmp_path, "sdxl", (19, 38))  # no depth in its files
    assert not in_manifest(tmp_path, "flux-tiny", (4, 8))
    assert not in_manifest(tmp_path / "elsewhere", "flux", (4, 8))


def test_flux_blocks_parse_or_say_what_is_wrong():
    assert flux_blocks("19,38") == (19, 38)
    for bad, message in [("19", "not DOUBLE,SINGLE"), ("a,b", "not DOUBLE,SINGLE"), ("0,38", "at least one block")]:
        with pytest.raises(argparse.ArgumentTypeError, match=message):
            flux_blocks(bad)


def test_the_nvfp4_and_mxfp8_files_are_made_only_when_asked_for(tmp_path):
    assert ON_DEMAND == ("nvfp4", "mxfp8") and not FILE_FORMATS["fp8"].on_demand
    assert FILE_FORMATS["fp8"].stock_loads and not any(FILE_FORMATS[fmt].stock_loads for fmt in ON_DEMAND)
    sd = {"files": {"checkpoint": "c.safetensors"}, "variants": {"fp8": {"checkpoint": "c-fp8.safetensors"},
                                                                  "nvfp4": {"checkpoint": "c-nvfp4.safetensors"}}}
    old = {"files": {"checkpoint": "c.safetensors"}, "fp8_files": {"checkpoint": "c-fp8.safetensors"}}
    upscaler = {"files": {"upscale_model": "e.safetensors"}, "variants": {}}
    (tmp_path / "manifest.json").write_text(json.dumps({"sdxl": sd, "sd15-tiny": old, "esrgan": upscaler}))
    assert in_manifest(tmp_path, "sdxl", (4, 8), ("nvfp4",)) and in_manifest(tmp_path, "sdxl", (4, 8), ("fp8",))
    assert not in_manifest(tmp_path, "sdxl", (4, 8), ("nvfp4", "mxfp8"))  # mxfp8 was never asked for: made now
    assert not in_manifest(tmp_path, "sd15-tiny", (4, 8))  # a manifest of before the formats: made again
    assert in_manifest(tmp_path, "esrgan", (4, 8), ("mxfp8",))  # no diffusion model to have it


def test_a_configuration_s_format_picks_its_diffusion_model_file():
    shape = workflows.Shape(64, 64, 2, 1.0)
    sd = {"files": {"checkpoint": "c.safetensors"},
          "variants": {fmt: {"checkpoint": f"c-{fmt}.safetensors"} for fmt in FILE_FORMATS}}
    flux = {"files": {"diffusion_model": "f.safetensors", "clip_l": "l.safetensors", "t5xxl": "t.safetensors",
                      "vae": "v.safetensors"},
            "variants": {fmt: {"diffusion_model": f"f-{fmt}.safetensors"} for fmt in FILE_FORMATS}}
    for fmt in (None, *FILE_FORMATS):
        suffix = f"-{fmt}" if fmt else ""
        prompt = workflows.build("txt2img", "sdxl", sd, file_format=fmt, compile_node=False, shape=shape, seed=1)
        assert prompt["loader"]["inputs"]["ckpt_name"] == f"c{suffix}.safetensors"
        prompt = workflows.build("img2img", "flux", flux, file_format=fmt, compile_node=True, shape=shape, seed=1,
                                 input_image="in.png")
        assert prompt["loader"]["inputs"]["unet_name"] == f"f{suffix}.safetensors"
        assert prompt["clip"]["inputs"]["clip_name2"] == "t.safetensors"  # the rest of the set as it is
        assert prompt["torch_compile"]["inputs"]["model"] == ["loader", 0]
