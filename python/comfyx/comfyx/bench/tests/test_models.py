"""Which generated model set a bench run finds, and ``--flux-blocks``' values."""

from __future__ import annotations

import argparse
import json

import pytest
from comfyx.bench.models import flux_blocks, in_manifest


def test_a_flux_model_of_another_depth_is_not_taken_for_the_one_asked(tmp_path):
    # a model directory that holds Flux at 4+8 blocks: a run at 19+38 must generate its own
    files = {"diffusion_model": "comfyx-flux-4x8.safetensors", "vae": "comfyx-flux-ae.safetensors"}
    (tmp_path / "manifest.json").write_text(json.dumps({"flux": {"files": files}, "sdxl": {"files": {}}}))
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
