"""pkgs/comfyui: each variant's environment holds ComfyUI's requirements and the right torch."""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
SOURCES = json.loads((REPO / "pkgs" / "sources.json").read_text())

# torch 2.10.0+xpu's Intel requirements, in its order: PyTorch's PYTORCH_EXTRA_INSTALL_REQUIREMENTS
# ["xpu"] (.github/scripts/generate_binary_build_matrix.py), which utensils/comfyui-nix pins too.
TORCH_XPU_INTEL_REQUIREMENTS = {
    "intel-cmplr-lib-rt": "2025.3.1", "intel-cmplr-lib-ur": "2025.3.1", "intel-cmplr-lic-rt": "2025.3.1",
    "intel-sycl-rt": "2025.3.1", "oneccl-devel": "2021.17.1", "oneccl": "2021.17.1", "impi-rt": "2021.17.0",
    "onemkl-license": "2025.3.0", "onemkl-sycl-blas": "2025.3.0", "onemkl-sycl-dft": "2025.3.0",
    "onemkl-sycl-lapack": "2025.3.0", "onemkl-sycl-rng": "2025.3.0", "onemkl-sycl-sparse": "2025.3.0",
    "dpcpp-cpp-rt": "2025.3.1", "intel-opencl-rt": "2025.3.1", "mkl": "2025.3.0", "intel-openmp": "2025.3.1",
    "tbb": "2022.3.0", "tcmlib": "1.4.1", "umf": "1.0.2", "intel-pti": "0.15.0",
}
# torch 2.10.0's other Requires-Dist (the PyPI wheel's METADATA, less the CUDA ones and triton).
TORCH_2_10_REQUIREMENTS = {"filelock", "typing-extensions", "setuptools", "sympy", "networkx", "jinja2", "fsspec"}
VARIANTS = ["cpu", "cuda", "ipex", "ipex-cpu", "tpu"]

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


@pytest.mark.parametrize("variant", VARIANTS)
def test_environment_has_comfyuis_requirements(comfyui_package, variant):
    env = {normalize(n) for n in comfyui_package(variant)["packages"]}
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


def test_ipex_is_torch_xpu_on_python_3_12(comfyui_package):
    r = comfyui_package("ipex")
    assert r["pname"] == "comfyui-ipex" and r["launcher"]["backend"] == "ipex"
    assert r["pythonVersion"] == "3.12"  # the pinned XPU wheels are cp312
    assert r["torch"] == {"name": "torch", "version": "2.10.0+xpu", "src": "wheel:torch-2.10.0-xpu",
                          "dontCheckRuntimeDeps": False}  # its Requires-Dist is checked at build time
    assert "intel-extension-for-pytorch" not in r["packages"]  # IPEX 2.8 needs torch 2.8
    assert r["uncheckedTransformers"] is True
    xpu = r["xpu"]
    assert xpu["torchvision"]["src"] == "wheel:torchvision-0.25.0-xpu"
    assert xpu["torchaudio"]["src"] == "wheel:torchaudio-2.10.0-xpu"
    # The set's `triton` is the XPU build, so that no second `triton` module enters the environment.
    assert xpu["triton"]["name"] == "triton-xpu" and xpu["triton"]["src"] == "wheel:triton-xpu-3.6.0"
    assert set(xpu["torch"]["dependencies"]) == TORCH_2_10_REQUIREMENTS | {"triton-xpu", "intel-xpu-runtime"}
    for name in ("torchvision", "torchaudio"):
        assert "torch" in xpu[name]["dependencies"]
        assert xpu[name]["preFixup"].strip() == (
            'addAutoPatchelfSearchPath "/nix/store/torch/lib/python3.12/site-packages/torch/lib"')


@pytest.mark.parametrize("wheel", ["torch", "torchvision", "torchaudio", "triton", "intel-xpu-runtime"])
def test_xpu_binaries_are_linked_against_the_intel_runtime(comfyui_package, wheel):
    w = comfyui_package("ipex")["xpu"][wheel]
    assert w["nativeBuildInputs"] == ["autoPatchelfHook"]
    assert {"gcc-lib", "zlib", "level-zero"} <= set(w["buildInputs"])
    if wheel != "intel-xpu-runtime":
        assert "intel-xpu-runtime" in w["buildInputs"]


def test_intel_runtime_is_torch_xpus_requirements(comfyui_package):
    rt = comfyui_package("ipex")["xpu"]["intel-xpu-runtime"]
    assert rt["srcs"] == [f"wheel:{n}" for n in TORCH_XPU_INTEL_REQUIREMENTS]
    for name, version in TORCH_XPU_INTEL_REQUIREMENTS.items():
        entry = SOURCES[name]
        assert (entry["type"], entry["version"], entry["python"], entry["abi"], entry["platform"]) == (
            "pypi-wheel", version, "py2.py3", "none", "manylinux_2_28_x86_64"), name
    assert rt["version"] == SOURCES["intel-sycl-rt"]["version"]
    # The Level Zero adapter dlopens the loader; a NEEDED entry puts nixpkgs' on its runpath.
    assert "patchelf --add-needed libze_loader.so.1" in rt["postInstall"]
    assert "libze_loader.so.1" not in rt["ignoreMissingDeps"]
    assert set(rt["ignoreMissingDeps"]) == {  # Intel MPI's multi-machine fabric providers only
        "libibverbs.so.1", "librdmacm.so.1", "libefa.so.1", "libpsm2.so.2", "libucp.so.0", "libnuma.so.1",
        "libuuid.so.1"}
    assert rt["license"] == ["issl", "unfree"]


def test_ipex_cpu_keeps_ipex_2_8_on_torch_2_8(comfyui_package):
    r = comfyui_package("ipex-cpu")
    assert r["pname"] == "comfyui-ipex-cpu" and r["pythonVersion"] == "3.13"
    assert r["torch"] == {"name": "torch-bin", "version": "2.8.0", "src": "wheel:torch-2.8.0",
                          "dontCheckRuntimeDeps": True}
    assert "intel-extension-for-pytorch" in r["packages"]
    assert SOURCES["intel-extension-for-pytorch"]["version"] == "2.8.0"
    # comfyx's one Intel backend: XPU through torch.xpu when there is one, else IPEX on the CPU.
    assert r["launcher"] == {"backend": "ipex", "variant": "ipex-cpu", "comfyui-src": "/nix/store/src",
                             "withBmf": True}


@pytest.mark.parametrize("variant", ["cpu", "cuda", "tpu"])
def test_other_variants_run_python_3_13(comfyui_package, variant):
    assert comfyui_package(variant)["pythonVersion"] == "3.13"


def test_import_test_loads_the_variants_torch(comfyui_package):
    script = comfyui_package("ipex")["importTest"]["script"]
    assert "/nix/store/env/bin/python -c 'import torch; assert torch.xpu._is_compiled()" in script
    assert "intel_extension_for_pytorch" in comfyui_package("ipex-cpu")["importTest"]["script"]


def test_wheels_are_fetched_from_their_pins(nix_eval):
    r = nix_eval("eval-fetch-wheel.nix")
    fetches = r["fetches"]
    torch = fetches["torch-2.10.0-xpu"]
    assert torch == {"fetcher": "fetchurl", "url": SOURCES["torch-2.10.0-xpu"]["url"],
                     "hash": SOURCES["torch-2.10.0-xpu"]["hash"],
                     "name": "torch-2.10.0+xpu-cp312-cp312-linux_x86_64.whl"}
    for name, f in fetches.items():
        s = SOURCES[name]
        if s["type"] == "url-wheel":
            assert f["fetcher"] == "fetchurl" and "%" not in f["name"] and f["name"].endswith(".whl"), name
            assert f["name"].startswith(f"{s['pname'].replace('-', '_')}-{s['version']}-"), name
        else:
            assert f["fetcher"] == "fetchPypi" and f["dist"] == s["python"] and f["hash"] == s["hash"], name
    assert fetches["tcmlib"]["python"] == "py2.py3"
    assert r["notAWheel"] is False


def test_tpu_pins_torch_2_9_with_torch_xla(comfyui_package):
    r = comfyui_package("tpu")
    assert r["torch"]["version"] == "2.9.0" and r["torch"]["src"] == "wheel:torch-2.9.0"
    assert "torch-xla" in r["packages"]


def test_launcher(comfyui_package):
    r = comfyui_package("tpu")
    assert r["pname"] == "comfyui-tpu" and r["version"] == "0.3.64"
    assert r["launcher"] == {"backend": "tpu", "variant": "tpu", "comfyui-src": "/nix/store/src", "withBmf": True}


def test_bmf_is_in_every_package_unless_left_out(comfyui_package):
    # comfyx's default engine is BMF's, for `nix run` as for pip; withBmf = false leaves it out
    r = comfyui_package("cuda")
    assert "bmf" in r["packages"] and r["launcher"]["withBmf"] is True
    assert "bmf" not in comfyui_package("cuda", bmf=False)["packages"]


def test_pyproject_requirements_map_to_nixpkgs_names(nix_eval):
    r = nix_eval("eval-requirements.nix")
    assert set(r["dependencies"]) >= {"packaging", "platformdirs", "tqdm"}
    assert "websocket-client" in r["test"] and "pytest" in r["test"]
    assert r["samples"] == ["websocket-client", "pyyaml", "pytest-timeout", "tqdm"]
