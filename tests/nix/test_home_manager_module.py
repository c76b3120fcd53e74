"""programs.comfyui, evaluated with nixpkgs' lib and Home Manager stubs (eval-home-manager.nix)."""

from __future__ import annotations

import shlex

STORE = "/nix/store/00000000000000000000000000000000-"
DATA = "/home/alice/.local/share/comfyui"


def cfg(*lines: str) -> str:
    return "{ " + " ".join(("programs.comfyui.enable = true;", *lines)) + " }"


def test_defaults_render_a_user_service(home):
    r = home(cfg())
    assert r["failedAssertions"] == []
    svc = r["service"]
    assert shlex.split(svc["Service"]["ExecStart"]) == [f"{STORE}comfyui-cpu/bin/comfyui", "--",
                                                        "--disable-auto-launch"]
    assert sorted(svc["Service"]["Environment"]) == [f"COMFYUI_DATA_DIR={DATA}", "COMFYX_BACKEND=cpu"]
    assert svc["Install"]["WantedBy"] == ["default.target"]
    assert r["packages"] == ["comfyui-cpu"]
    assert r["files"] == {}


def test_backend_and_devices(home):
    r = home(cfg('programs.comfyui.backend = { type = "cuda"; device = "cuda:1"; };'))
    env = r["service"]["Service"]["Environment"]
    assert "CUDA_VISIBLE_DEVICES=1" in env and "COMFYX_BACKEND=cuda" in env
    assert r["service"]["Service"]["ExecStart"].startswith(f"{STORE}comfyui-cuda/bin/comfyui")


def test_ipex_defaults_to_the_xpu_package_and_takes_the_cpu_one(home):
    r = home(cfg('programs.comfyui.backend.type = "ipex";'))
    assert r["packages"] == ["comfyui-ipex"]
    r = home(cfg('programs.comfyui.backend.type = "ipex";', "programs.comfyui.package = pkgs.comfyui-ipex-cpu;")
             .replace("{ ", "{ pkgs, ... }: { ", 1))
    assert r["packages"] == ["comfyui-ipex-cpu"]
    assert "COMFYX_BACKEND=ipex" in r["service"]["Service"]["Environment"]


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


def test_custom_nodes_need_development_mode(home):
    nodes = 'programs.comfyui.development.customNodes.mine = "/home/alice/src/mine";'
    r = home(cfg(nodes))
    assert any("development.enable" in m for m in r["failedAssertions"])
    r = home(cfg(nodes, "programs.comfyui.development.enable = true;"))
    assert r["failedAssertions"] == []
    assert r["files"][f"{DATA}/custom_nodes/mine"] == "out-of-store:/home/alice/src/mine"
    assert r["packages"] == ["comfyui-cpu", "comfyui-cpu-env"]


def test_extra_args_follow(home):
    r = home(cfg('programs.comfyui.extraArgs = [ "--listen=0.0.0.0" ];'))
    assert shlex.split(r["service"]["Service"]["ExecStart"])[-1] == "--listen=0.0.0.0"


def test_disabled_renders_nothing(home):
    r = home("{ }")
    assert r["service"] is None and r["packages"] == [] and r["files"] == {}


def test_fast_path_flags_go_to_comfyx(home):
    r = home("{ programs.comfyui = { enable = true; fast = { enable = true; quantizeLayers = \"all\"; }; }; }")
    argv = shlex.split(r["service"]["Service"]["ExecStart"])
    assert argv[1:argv.index("--")] == ["--fast", "--quantize-layers", "all"]
