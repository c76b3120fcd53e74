"""programs.comfyui, evaluated with nixpkgs' lib and Home Manager stubs (eval-home-manager.nix)."""

from __future__ import annotations

import shlex

import pytest

STORE = "/nix/store/00000000000000000000000000000000-"
DATA = "/home/alice/.local/share/comfyui"


def cfg(*lines: str) -> str:
    return "{ " + " ".join(("programs.comfyui.enable = true;", *lines)) + " }"


def argv(result: dict) -> list[str]:
    return shlex.split(result["service"]["Service"]["ExecStart"])


def test_defaults_render_a_user_service(home):
    r = home(cfg())
    assert r["failedAssertions"] == [] and r["warnings"] == []
    svc = r["service"]
    # the launcher and comfyx's flags, as the NixOS unit runs them
    assert argv(r) == [f"{STORE}comfyui-cpu/bin/comfyui", "--backend", "cpu", "--engine", "bmf", "--",
                       "--disable-auto-launch"]
    assert svc["Service"]["Environment"] == [f"COMFYUI_DATA_DIR={DATA}"]
    assert svc["Install"]["WantedBy"] == ["default.target"]
    assert r["packages"] == ["comfyui-cpu"]
    assert r["finalPackage"] == {"withBmf": True, "extraPythonPackages": []}
    assert r["files"] == {}


def test_backend_and_devices(home):
    r = home(cfg('programs.comfyui.backend = { type = "cuda"; device = "cuda:1"; };'))
    assert r["service"]["Service"]["Environment"] == [f"COMFYUI_DATA_DIR={DATA}", "CUDA_DEVICE_ORDER=PCI_BUS_ID",
                                                      "CUDA_VISIBLE_DEVICES=1"]
    assert argv(r)[:3] == [f"{STORE}comfyui-cuda/bin/comfyui", "--backend", "cuda"]


def test_ipex_defaults_to_the_xpu_package_and_takes_the_cpu_one(home):
    r = home(cfg('programs.comfyui.backend.type = "ipex";'))
    assert r["packages"] == ["comfyui-ipex"]
    r = home(cfg('programs.comfyui.backend.type = "ipex";', "programs.comfyui.package = pkgs.comfyui-ipex-cpu;")
             .replace("{ ", "{ pkgs, ... }: { ", 1))
    assert r["packages"] == ["comfyui-ipex-cpu"]
    assert argv(r)[1:3] == ["--backend", "ipex"]


def test_tpu_with_cuda_devices_is_rejected(home):
    r = home(cfg('programs.comfyui.backend = { type = "tpu"; device = "cuda:0"; };'))
    assert any('names cuda devices' in m for m in r["failedAssertions"])


def test_workspace_workflows_and_model_links(home):
    r = home(cfg(
        'programs.comfyui.workspace.directory = "/home/alice/comfy";',
        'programs.comfyui.workspace.workflows.portrait = ./eval-home-manager.nix;',
        'programs.comfyui.models.symlinks."checkpoints/sd15.safetensors" = "/data/sd15.safetensors";',
    ))
    files = r["files"]
    assert files["/home/alice/comfy/user/default/workflows/portrait.json"].endswith("eval-home-manager.nix")
    assert files["/home/alice/comfy/models/checkpoints/sd15.safetensors"] == "out-of-store:/data/sd15.safetensors"
    assert "COMFYUI_DATA_DIR=/home/alice/comfy" in r["service"]["Service"]["Environment"]


def test_home_relative_paths_are_expanded(home):
    r = home(cfg(
        'programs.comfyui.workspace = { directory = "~/comfy"; workflows = "~/flows"; };',
        'programs.comfyui.models.symlinks.loras = "~/models/loras";',
    ))
    assert r["workspace"] == "/home/alice/comfy" and r["symlinks"] == {"loras": "/home/alice/models/loras"}
    assert r["files"] == {
        "/home/alice/comfy/user/default/workflows": "out-of-store:/home/alice/flows",  # a directory, linked
        "/home/alice/comfy/models/loras": "out-of-store:/home/alice/models/loras",
    }
    assert "COMFYUI_DATA_DIR=/home/alice/comfy" in r["service"]["Service"]["Environment"]


def test_a_workflows_directory_in_the_configuration_is_linked_from_the_store(home):
    r = home(cfg("programs.comfyui.workspace.workflows = ./tests/nix;"))  # relative to the repository
    assert r["files"][f"{DATA}/user/default/workflows"].endswith("/tests/nix")


@pytest.mark.parametrize("path", ["comfy", "$HOME/comfy", "~alice/comfy"])
def test_a_path_that_is_neither_absolute_nor_home_relative_is_refused(home_error, path):
    assert "is not of type" in home_error(cfg(f'programs.comfyui.workspace.directory = "{path}";'))


def test_custom_nodes_need_development_mode(home):
    nodes = 'programs.comfyui.development.customNodes.mine = "~/src/mine";'
    r = home(cfg(nodes))
    assert any("development.enable" in m for m in r["failedAssertions"])
    r = home(cfg(nodes, "programs.comfyui.development.enable = true;"))
    assert r["failedAssertions"] == []
    assert r["files"][f"{DATA}/custom_nodes/mine"] == "out-of-store:/home/alice/src/mine"
    assert r["packages"] == ["comfyui-cpu", "comfyui-cpu-env"]


def test_custom_node_packages_are_linked_and_their_python_deps_built_in(home):
    r = home("{ pkgs, ... }: { programs.comfyui = { enable = true; development = { enable = true; "
             "customNodes = [ pkgs.comfyuiNodes.comfyui-gguf ]; }; }; }")
    assert r["failedAssertions"] == []
    assert r["files"][f"{DATA}/custom_nodes/comfyui-gguf"] == f"{STORE}comfyui-gguf"
    assert r["finalPackage"]["extraPythonPackages"] == [
        "python3.13-gguf", "python3.13-sentencepiece", "python3.13-protobuf"]


def test_extra_args_follow(home):
    r = home(cfg('programs.comfyui.extraArgs = [ "--listen=0.0.0.0" ];'))
    assert shlex.split(r["service"]["Service"]["ExecStart"])[-1] == "--listen=0.0.0.0"


def test_disabled_renders_nothing(home):
    r = home("{ }")
    assert r["service"] is None and r["packages"] == [] and r["files"] == {}


def test_fast_path_flags_go_to_comfyx(home):
    r = home('{ programs.comfyui = { enable = true; backend.optimization = "performance"; '
             'fast.quantizeLayers = "all"; }; }')
    assert argv(r)[5:argv(r).index("--")] == ["--optimization", "performance", "--quantize-layers", "all"]
    r = home('{ programs.comfyui = { enable = true; fast.enable = true; }; }')  # the option's earlier name
    assert argv(r)[5:argv(r).index("--")] == ["--optimization", "performance"]
    assert len(r["warnings"]) == 1 and "programs.comfyui.fast.enable" in r["warnings"][0]
