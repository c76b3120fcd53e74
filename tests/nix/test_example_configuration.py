"""The example configuration our Intel plan promises users (intel-plan-example.nix) evaluates, and means
what it says: the ipex backend on every device it finds, the fast path, a 10 GB model cache, the server on
127.0.0.1:8188, and a Home Manager workspace whose ~/ paths are the user's home."""

from __future__ import annotations

import shlex

from comfyx import fastpath
from comfyx.cli.main import build_parser
from comfyx.settings import tree
from comfyx.settings.spec import read

STORE = "/nix/store/00000000000000000000000000000000-"
EXAMPLE = "(import ./tests/nix/intel-plan-example.nix)"


def comfyx_argv(exec_start: str) -> tuple[str, list[str], list[str]]:
    argv = shlex.split(exec_start)
    cut = argv.index("--")
    return argv[0], argv[1:cut], argv[cut + 1:]


def test_the_nixos_half(nixos):
    r = nixos(f"{{ services.comfyui = {EXAMPLE}.services.comfyui; }}")
    assert r["failedAssertions"] == [] and r["warnings"] == []
    program, ours, theirs = comfyx_argv(r["unit"]["serviceConfig"]["ExecStart"])
    assert program == f"{STORE}comfyui-ipex/bin/comfyui"  # Intel GPUs; IPEX on a Xeon with package = comfyui-ipex-cpu
    assert ours == ["--backend", "ipex", "--engine", "bmf", "--model-cache-size", "10GB",
                    "--optimization", "performance"]
    assert theirs == ["--listen=127.0.0.1", "--port=8188", "--disable-auto-launch"]
    # device = "auto": every Intel GPU there is (no ZE_AFFINITY_MASK), the render nodes opened
    assert "ZE_AFFINITY_MASK" not in r["unit"]["environment"]
    assert r["unit"]["serviceConfig"]["DeviceAllow"] == ["char-drm rw"]
    assert r["defaults"]["modelsPath"] == "/var/lib/comfyui/models"
    assert r["finalPackage"]["overridden"]["withBmf"] is True
    # what comfyx makes of those flags, on a machine where its kernels run
    args, unknown = build_parser().parse_known_args(["serve", *ours])
    given = {group.name: read(group, args, {}, []) for group in tree.GROUPS}
    assert unknown == [] and given["backend"] == {"name": "ipex"}
    assert given["engine"] == {"name": "bmf", "model_cache_size": 10 * 10**9}
    fast, _ = fastpath.build(given["fast"], kernels_unavailable=None)
    assert (fast.optimization, fast.kernels, fast.quantize, fast.compile) == ("performance", True, "fp8", True)


def test_the_home_manager_half(home):
    r = home(f"{{ programs.comfyui = {EXAMPLE}.programs.comfyui; }}")
    assert r["failedAssertions"] == [] and r["warnings"] == []
    workspace = "/home/alice/comfyui-workspace"
    assert r["workspace"] == workspace
    assert r["files"] == {
        f"{workspace}/user/default/workflows": "out-of-store:/home/alice/comfyui-workflows",
        f"{workspace}/models/checkpoints": "out-of-store:/home/alice/ai-models/checkpoints",
        f"{workspace}/models/loras": "out-of-store:/home/alice/ai-models/loras",
        f"{workspace}/models/controlnet": "out-of-store:/home/alice/ai-models/controlnet",
    }
    program, ours, theirs = comfyx_argv(r["service"]["Service"]["ExecStart"])
    assert program == f"{STORE}comfyui-cpu/bin/comfyui" and ours == ["--backend", "cpu", "--engine", "bmf"]
    assert theirs == ["--disable-auto-launch"]
    assert r["service"]["Service"]["Environment"] == [f"COMFYUI_DATA_DIR={workspace}"]
    assert r["packages"] == ["comfyui-cpu", "comfyui-cpu-env"]  # development: the environment on PATH
