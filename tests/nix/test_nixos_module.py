"""services.comfyui, evaluated with nixpkgs' lib and stubs (tests/nix/eval-nixos.nix)."""

from __future__ import annotations

import shlex

import pytest

STORE = "/nix/store/00000000000000000000000000000000-"
ENABLE = "services.comfyui.enable = true;"


def cfg(*lines: str) -> str:
    return "{ " + " ".join((ENABLE, *lines)) + " }"


def exec_start(result: dict) -> list[str]:
    return shlex.split(result["unit"]["serviceConfig"]["ExecStart"])


def comfyui_flags(result: dict) -> list[str]:
    argv = exec_start(result)
    return argv[argv.index("--") + 1:]


def comfyx_flags(result: dict) -> list[str]:
    argv = exec_start(result)
    return argv[1:argv.index("--")]


def test_defaults_render_a_cpu_unit(nixos):
    r = nixos(cfg())
    assert r["failedAssertions"] == []
    assert r["defaults"] == {
        "autoDownload": True,
        "backend": {"device": "auto", "optimization": "default", "type": "cpu"},
        "cache": {"enable": True, "size": None},  # the engine's model cache
        "outputCache": {"enable": True, "size": None},  # ComfyUI's
        "engine": "bmf",  # comfyx's own default
        "cors": False,
        "dataDir": "/var/lib/comfyui",
        "host": ["127.0.0.1"],
        "modelFiles": [],
        "modelsPath": "/var/lib/comfyui/models",
        "openFirewall": False,
        "port": 8188,
    }
    assert r["package"] == "comfyui-cpu"
    assert r["finalPackage"]["overridden"]["withBmf"] is True
    # The package's launcher, as Home Manager runs it: it adds ComfyUI's directories for COMFYUI_DATA_DIR.
    assert exec_start(r) == [
        f"{STORE}comfyui-cpu/bin/comfyui",
        "--backend", "cpu", "--engine", "bmf",
        "--",
        "--listen=127.0.0.1", "--port=8188", "--disable-auto-launch",
    ]
    env = r["unit"]["environment"]
    assert env["COMFYUI_DATA_DIR"] == "/var/lib/comfyui"
    assert env["COMFYX_CACHE_DIR"] == "/var/cache/comfyui"
    assert env["HOME"] == "/var/lib/comfyui"
    # each setting once, as a flag: no second channel for the backend, the engine or the caches
    for name in ("COMFYX_BACKEND", "COMFYX_ENGINE", "COMFYX_DATA_DIR", "COMFYUI_PATH", "TRITON_CACHE_DIR",
                 "TORCHINDUCTOR_CACHE_DIR", "CUDA_VISIBLE_DEVICES"):
        assert name not in env, name
    assert r["unit"]["wantedBy"] == ["multi-user.target"]
    assert r["users"]["comfyui"]["isSystemUser"] is True
    assert r["groups"] == ["comfyui"]
    assert r["firewallPorts"] == []
    assert r["tmpfiles"] == {}


def test_unit_is_hardened(nixos):
    sc = nixos(cfg())["unit"]["serviceConfig"]
    assert sc["User"] == "comfyui" and sc["Group"] == "comfyui"
    assert sc["StateDirectory"] == "comfyui"
    assert sc["CacheDirectory"] == "comfyui"
    assert sc["ProtectSystem"] == "strict"
    assert sc["ProtectHome"] == "tmpfs"
    assert sc["DevicePolicy"] == "closed"
    assert sc["DeviceAllow"] == []
    assert sc["PrivateDevices"] is True
    # JIT compilers (Triton, inductor, XLA) need writable+executable memory.
    assert sc["MemoryDenyWriteExecute"] is False
    for key in ("NoNewPrivileges", "PrivateTmp", "ProtectKernelTunables", "ProtectKernelModules",
                "ProtectKernelLogs", "ProtectControlGroups", "RestrictNamespaces", "RestrictSUIDSGID",
                "LockPersonality", "RestrictRealtime", "ProtectClock", "ProtectHostname"):
        assert sc[key] is True, key
    assert sc["CapabilityBoundingSet"] == [""]
    assert sc["SystemCallFilter"] == ["@system-service", "~@privileged"]
    assert sc["RestrictAddressFamilies"] == ["AF_UNIX", "AF_INET", "AF_INET6"]
    assert "LimitMEMLOCK" not in sc


def test_user_flags_follow_the_modules_own(nixos):
    r = nixos(cfg('services.comfyui.extraArgs = [ "--port=9000" "--preview-method=auto" ];'))
    flags = comfyui_flags(r)
    assert flags[:2] == ["--listen=127.0.0.1", "--port=8188"]
    assert flags[-2:] == ["--port=9000", "--preview-method=auto"]  # argparse: the last one wins


def test_cuda_backend_with_devices(nixos):
    r = nixos(cfg('services.comfyui.backend = { type = "cuda"; device = "cuda:0,1"; };'))
    assert r["failedAssertions"] == []
    assert r["package"] == "comfyui-cuda"
    assert exec_start(r)[0] == f"{STORE}comfyui-cuda/bin/comfyui"
    assert exec_start(r)[exec_start(r).index("--backend") + 1] == "cuda"
    env = r["unit"]["environment"]
    assert env["CUDA_VISIBLE_DEVICES"] == "0,1"
    assert env["CUDA_DEVICE_ORDER"] == "PCI_BUS_ID"
    sc = r["unit"]["serviceConfig"]
    assert "char-nvidia-frontend rw" in sc["DeviceAllow"]
    assert "char-nvidia-uvm rw" in sc["DeviceAllow"]
    assert sc["PrivateDevices"] is False
    assert sc["DevicePolicy"] == "closed"


def test_cuda_without_indices_uses_every_gpu(nixos):
    for device in ("cuda", "auto"):
        r = nixos(cfg(f'services.comfyui.backend = {{ type = "cuda"; device = "{device}"; }};'))
        assert "CUDA_VISIBLE_DEVICES" not in r["unit"]["environment"]


def test_ipex_backend_opens_render_nodes(nixos):
    r = nixos(cfg('services.comfyui.backend = { type = "ipex"; device = "xpu:1"; };'))
    assert r["failedAssertions"] == []
    sc = r["unit"]["serviceConfig"]
    assert sc["DeviceAllow"] == ["char-drm rw"]
    assert sorted(sc["SupplementaryGroups"]) == ["render", "video"]
    assert r["unit"]["environment"]["ZE_AFFINITY_MASK"] == "1"
    assert r["package"] == "comfyui-ipex"  # Intel GPUs, torch's XPU wheels


def test_ipex_on_a_xeon_cpu_takes_the_ipex_cpu_package(nixos):
    r = nixos(cfg('services.comfyui.backend.type = "ipex";', "services.comfyui.package = pkgs.comfyui-ipex-cpu;")
              .replace("{ ", "{ pkgs, ... }: { ", 1))
    assert r["failedAssertions"] == []
    assert r["package"] == "comfyui-ipex-cpu"
    assert exec_start(r)[0] == f"{STORE}comfyui-ipex-cpu/bin/comfyui"
    assert exec_start(r)[1:3] == ["--backend", "ipex"]


def test_tpu_backend(nixos):
    r = nixos(cfg('services.comfyui.backend = { type = "tpu"; device = "tpu:0"; };'))
    assert r["failedAssertions"] == []
    sc = r["unit"]["serviceConfig"]
    assert "char-accel rw" in sc["DeviceAllow"] and "char-vfio rw" in sc["DeviceAllow"]
    assert sc["LimitMEMLOCK"] == "infinity"
    assert "AF_NETLINK" in sc["RestrictAddressFamilies"]
    assert r["unit"]["environment"]["TPU_VISIBLE_CHIPS"] == "0"


def test_tpu_backend_with_cuda_devices_is_rejected(nixos):
    r = nixos(cfg('services.comfyui.backend = { type = "tpu"; device = "cuda:0"; };'))
    assert len(r["failedAssertions"]) == 1
    message = r["failedAssertions"][0]
    assert 'backend.device = "cuda:0" names cuda devices' in message
    assert '"tpu"' in message


def test_cpu_backend_with_gpu_devices_is_rejected(nixos):
    r = nixos(cfg('services.comfyui.backend.device = "xpu:0";'))
    assert any("names ipex devices" in m for m in r["failedAssertions"])


def test_bad_values_are_type_errors(nixos_error):
    assert "is not of type" in nixos_error(cfg('services.comfyui.backend.device = "gpu0";'))
    assert "is not of type" in nixos_error(cfg('services.comfyui.backend.type = "rocm";'))
    assert "is not of type" in nixos_error(cfg("services.comfyui.server.port = 70000;"))
    assert "is not of type" in nixos_error(cfg('services.comfyui.backend.optimization = "fast";'))
    assert "is not of type" in nixos_error(cfg('services.comfyui.engine = "fast";'))
    assert "is not of type" in nixos_error(cfg("services.comfyui.bmf.workers = 0;"))
    assert "is not of type" in nixos_error(cfg("services.comfyui.tpu.padMultiple = 60;"))
    assert "is not of type" in nixos_error(cfg("services.comfyui.hardening.shutdownTimeout = 4000;"))
    # the model cache is a byte budget now: the node count ComfyUI's cache took is outputCache.size
    error = nixos_error(cfg("services.comfyui.models.cache.size = 32;"))
    assert "is not of type" in error and "10GB" in error
    assert "is not of type" in nixos_error(cfg('services.comfyui.models.cache.size = "lots";'))
    assert "is not of type" in nixos_error(cfg('services.comfyui.nodes.enable = [ "no-such-node" ];'))
    assert "is not of type" in nixos_error(cfg('services.comfyui.nodes.enable = [ "override" ];'))
    model = '{ name = "a.safetensors"; url = "https://example.org/a"; hash = "%s"; type = "%s"; }'
    good_hash = "sha256-" + "A" * 42 + "E="
    assert "is not of type" in nixos_error(
        cfg(f"services.comfyui.models.files = [ {model % ('md5-abc', 'checkpoints')} ];"))
    assert "is not of type" in nixos_error(
        cfg(f"services.comfyui.models.files = [ {model % (good_hash, 'weights')} ];"))


MODEL = (
    '{ name = "tiny.safetensors"; url = "https://example.org/tiny.safetensors"; '
    'hash = "sha256-47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU="; type = "checkpoints"; }'
)


def test_declared_models_are_fetched_and_linked(nixos):
    r = nixos(cfg(f"services.comfyui.models.files = [ {MODEL} ];"))
    pre = r["unit"]["preStart"]
    assert f"ln -sfn {STORE}tiny.safetensors /var/lib/comfyui/models/checkpoints/tiny.safetensors" in pre
    # store links of an earlier configuration are removed first
    assert pre.index("-lname '/nix/store/*' -delete") < pre.index("ln -sfn")


def test_models_without_auto_download_must_exist(nixos):
    r = nixos(cfg(f"services.comfyui.models = {{ autoDownload = false; files = [ {MODEL} ]; }};"))
    pre = r["unit"]["preStart"]
    assert "ln -sfn" not in pre
    assert "[ -e /var/lib/comfyui/models/checkpoints/tiny.safetensors ]" in pre
    assert "exit 1" in pre


def test_duplicate_models_are_rejected(nixos):
    r = nixos(cfg(f"services.comfyui.models.files = [ {MODEL} {MODEL} ];"))
    assert any("share a type and name" in m for m in r["failedAssertions"])


def test_models_elsewhere_are_bound_and_configured(nixos):
    r = nixos(cfg('services.comfyui.models.path = "/srv/models";'))
    flags = comfyui_flags(r)
    extra = [f for f in flags if f.startswith("--extra-model-paths-config=")]
    assert extra == [f"--extra-model-paths-config={STORE}extra_model_paths.yaml"]
    assert r["unit"]["serviceConfig"]["BindPaths"] == ["/srv/models"]
    assert "/srv/models" in r["unit"]["preStart"]


def test_output_cache_is_comfyuis_and_the_model_cache_comfyxs(nixos):
    assert "--cache-none" in comfyui_flags(nixos(cfg("services.comfyui.outputCache.enable = false;")))
    assert "--cache-lru=16" in comfyui_flags(nixos(cfg("services.comfyui.outputCache.size = 16;")))
    r = nixos(cfg("services.comfyui.outputCache = { enable = false; size = 4; };"))
    assert any("outputCache.size is set" in m for m in r["failedAssertions"])
    r = nixos(cfg('services.comfyui.models.cache = { enable = true; size = "10GB"; };'))
    assert comfyx_flags(r)[-2:] == ["--model-cache-size", "10GB"]
    assert not any(f.startswith("--cache") for f in comfyui_flags(r))
    assert comfyx_flags(nixos(cfg("services.comfyui.models.cache.enable = false;")))[-1] == "--no-model-cache"
    r = nixos(cfg('services.comfyui.models.cache = { enable = false; size = "1GB"; };'))
    assert any("models.cache.size is set" in m for m in r["failedAssertions"])


def test_server_options(nixos):
    r = nixos(cfg('services.comfyui.server = { host = [ "0.0.0.0" "::" ]; port = 8288; cors = true; };',
                  "services.comfyui.openFirewall = true;"))
    flags = comfyui_flags(r)
    assert "--listen=0.0.0.0,::" in flags and "--port=8288" in flags and "--enable-cors-header" in flags
    assert r["firewallPorts"] == [8288]
    assert r["warnings"] == []
    origin = comfyui_flags(nixos(cfg('services.comfyui.server.cors = "https://example.org";')))
    assert "--enable-cors-header=https://example.org" in origin
    # a comma-separated string, as this option took before, is read as the list
    r = nixos(cfg('services.comfyui.server.host = "10.0.0.1,::1";'))
    assert r["defaults"]["host"] == ["10.0.0.1", "::1"] and "--listen=10.0.0.1,::1" in comfyui_flags(r)


def test_open_firewall_on_loopback_warns(nixos):
    r = nixos(cfg("services.comfyui.openFirewall = true;"))
    assert r["firewallPorts"] == [8188]
    assert len(r["warnings"]) == 1 and "127.0.0.1" in r["warnings"][0]


def test_custom_data_dir(nixos):
    r = nixos(cfg('services.comfyui.dataDir = "/srv/comfyui";'))
    sc = r["unit"]["serviceConfig"]
    assert "StateDirectory" not in sc
    assert sc["BindPaths"] == ["/srv/comfyui"]
    assert r["tmpfiles"]["10-comfyui"]["/srv/comfyui"]["d"]["user"] == "comfyui"
    assert r["unit"]["environment"]["COMFYUI_DATA_DIR"] == "/srv/comfyui"
    assert r["defaults"]["modelsPath"] == "/srv/comfyui/models"
    assert not any(f.startswith("--extra-model-paths-config") for f in comfyui_flags(r))


def test_nodes_are_copied_and_their_python_deps_built_in(nixos):
    r = nixos(cfg('services.comfyui.nodes.enable = [ "comfyui-gguf" ];'))
    assert r["finalPackage"]["overridden"]["extraPythonPackages"] == [
        "python3.13-gguf", "python3.13-sentencepiece", "python3.13-protobuf"]
    pre = r["unit"]["preStart"]
    assert "dst=/var/lib/comfyui/custom_nodes/comfyui-gguf\n" in pre
    assert f'cp -r --no-preserve=mode {STORE}comfyui-gguf "$dst"' in pre
    assert "comfyui-gguf" in pre.split("case")[1]  # kept by the clean-up of removed nodes


def test_engine(nixos):
    r = nixos(cfg('services.comfyui.engine = "stock";'))
    assert comfyx_flags(r)[2:4] == ["--engine", "stock"]
    assert r["finalPackage"]["overridden"]["withBmf"] is False
    assert r["warnings"] == []


@pytest.mark.parametrize("engine", ["stock", "bmf"])
def test_backend_optimization_naming_the_engine_still_chooses_it_with_a_warning(nixos, engine):
    r = nixos(cfg(f'services.comfyui.backend.optimization = "{engine}";'))
    assert r["defaults"]["engine"] == engine
    assert comfyx_flags(r) == ["--backend", "cpu", "--engine", engine]  # and no --optimization
    assert r["finalPackage"]["overridden"]["withBmf"] is (engine == "bmf")
    (warning,) = r["warnings"]
    assert f'services.comfyui.engine = "{engine}"' in warning
    # an explicit engine wins over the old value
    assert nixos(cfg('services.comfyui.backend.optimization = "bmf";',
                     'services.comfyui.engine = "stock";'))["defaults"]["engine"] == "stock"


def test_environment_overrides_the_modules(nixos):
    r = nixos(cfg('services.comfyui.environment = { HF_HOME = "/srv/hf"; FOO = "1"; };'))
    env = r["unit"]["environment"]
    assert env["HF_HOME"] == "/srv/hf" and env["FOO"] == "1"


def test_nixpkgs_module_of_the_same_name_is_disabled(nixos):
    # eval-nixos.nix also imports a stand-in for nixpkgs' services/misc/comfyui.nix declaring
    # services.comfyui.enable; without disabledModules that is a duplicate declaration.
    assert nixos(cfg())["failedAssertions"] == []


def test_disabled_service_renders_nothing(nixos):
    r = nixos("{ }")
    assert r["unit"] is None and r["users"] == {} and r["firewallPorts"] == []


def test_performance_is_the_fast_path_and_its_parts_override_it(nixos):
    r = nixos(cfg('services.comfyui.backend.optimization = "performance";',
                  "services.comfyui.fast = { compile = false; kernels = true; };"))
    assert comfyx_flags(r)[4:] == ["--optimization", "performance", "--no-compile"]
    assert comfyx_flags(nixos(cfg('services.comfyui.fast.quantize = "fp8";')))[4:] == ["--quantize", "fp8"]


def test_fast_enable_is_renamed_to_backend_optimization_with_a_warning(nixos):
    r = nixos(cfg("services.comfyui.fast.enable = true;"))
    assert r["defaults"]["backend"]["optimization"] == "performance"
    assert comfyx_flags(r)[4:] == ["--optimization", "performance"]
    assert len(r["warnings"]) == 1 and "services.comfyui.fast.enable" in r["warnings"][0]


def test_hardening_settings_and_the_units_stop_timeout(nixos):
    r = nixos(cfg("services.comfyui.hardening = { maxPromptDepth = 100; shutdownTimeout = 60; };"))
    assert comfyx_flags(r)[4:] == ["--max-prompt-depth", "100", "--shutdown-timeout", "60"]
    assert r["unit"]["serviceConfig"]["TimeoutStopSec"] == "75s"  # systemd waits longer than comfyx does
    r = nixos(cfg("services.comfyui.hardening.enable = false;"))
    assert comfyx_flags(r)[4:] == ["--no-hardening"] and "TimeoutStopSec" not in r["unit"]["serviceConfig"]
