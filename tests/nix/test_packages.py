"""pkgs/comfyui: each backend's environment holds ComfyUI's requirements and the right torch."""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest

# ComfyUI v0.3.64's requirements.txt (a125cd84), by distribution name.
REQUIREMENTS_0_3_64 = [
    "comfyui-frontend-package", "comfyui-workflow-templates", "comfyui-embedded-docs", "torch", "torchsde",
    "torchvision", "torchaudio", "numpy", "einops", "transformers", "tokenizers", "sentencepiece",
    "safetensors", "aiohttp", "yarl", "pyyaml", "pillow", "scipy", "tqdm", "psutil", "alembic", "sqlalchemy",
    "av", "kornia", "spandrel", "pydantic", "pydantic-settings",
]


def normalize(name: str) -> str:
    name = re.sub(r"[-_.]+", "-", name).lower()
    return name.removesuffix("-bin")  # nixpkgs' wheel builds of torch, torchvision, torchaudio


def requirement_names(text: str) -> list[str]:
    names = []
    for line in text.splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            names.append(normalize(re.split(r"[<>=~!;\[ ]", line, maxsplit=1)[0]))
    return names


@pytest.mark.parametrize("backend", ["cpu", "cuda", "ipex", "tpu"])
def test_environment_has_comfyuis_requirements(comfyui_package, backend):
    env = {normalize(n) for n in comfyui_package(backend)["packages"]}
    assert set(REQUIREMENTS_0_3_64) <= env
    assert "comfyx" in env


def test_requirements_match_the_comfyui_checkout(comfyui_package):
    path = os.environ.get("COMFYUI_PATH")
    if not path:
        pytest.skip("COMFYUI_PATH is not set: no ComfyUI checkout to read requirements.txt from")
    wanted = set(requirement_names((Path(path) / "requirements.txt").read_text()))
    assert wanted == set(REQUIREMENTS_0_3_64)
    assert wanted <= {normalize(n) for n in comfyui_package("cpu")["packages"]}


def test_cpu_uses_nixpkgs_torch(comfyui_package):
    r = comfyui_package("cpu")
    assert r["torch"] == {"name": "torch", "version": None, "src": None, "dontCheckRuntimeDeps": False}
    assert r["uncheckedTransformers"] is False  # nothing rebuilt: the cache's builds are used


def test_cuda_uses_torch_wheels_and_cuda_kernels(comfyui_package):
    r = comfyui_package("cuda")
    assert r["torch"]["name"] == "torch-bin" and r["torch"]["src"] is None  # nixpkgs' own wheel
    assert {"torchvision-bin", "torchaudio-bin", "comfyx-kernels"} <= set(r["packages"])
    assert r["kernelsOverride"] == {"cudaSupport": True}
    assert r["uncheckedTransformers"] is True


def test_ipex_pins_torch_2_8(comfyui_package):
    r = comfyui_package("ipex")
    assert r["torch"] == {"name": "torch-bin", "version": "2.8.0", "src": "wheel:torch-2.8.0",
                          "dontCheckRuntimeDeps": True}
    assert "intel-extension-for-pytorch" in r["packages"]


def test_tpu_pins_torch_2_9_with_torch_xla(comfyui_package):
    r = comfyui_package("tpu")
    assert r["torch"]["version"] == "2.9.0" and r["torch"]["src"] == "wheel:torch-2.9.0"
    assert "torch-xla" in r["packages"]


def test_launcher(comfyui_package):
    r = comfyui_package("tpu")
    assert r["pname"] == "comfyui-tpu" and r["version"] == "0.3.64"
    assert r["launcher"] == {"backend": "tpu", "comfyui-src": "/nix/store/src", "withBmf": False}


def test_bmf_engine_adds_bmf(comfyui_package):
    assert "bmf" not in comfyui_package("cuda")["packages"]
    r = comfyui_package("cuda", bmf=True)
    assert "bmf" in r["packages"] and r["launcher"]["withBmf"] is True


def test_pyproject_requirements_map_to_nixpkgs_names(nix_eval):
    r = nix_eval("eval-requirements.nix")
    assert set(r["dependencies"]) >= {"packaging", "platformdirs", "tqdm"}
    assert "websocket-client" in r["test"] and "pytest" in r["test"]
    assert r["samples"] == ["websocket-client", "pyyaml", "pytest-timeout", "tqdm"]
