"""Backend selection and the TPU options, as `comfyx` parses them (no torch needed)."""

import pytest
from comfyx import backends
from comfyx.backends import BackendUnavailableError
from comfyx.backends.tpu.settings import TPUSettings
from comfyx.settings.spec import SettingsError
from comfyx.testing.settings import startup


def settings(*argv: str, environ: dict[str, str] | None = None):
    return startup(*argv, environ=environ).settings


def test_tpu_flags_are_comfyx_options_not_comfyui_arguments():
    from comfyx.cli.main import build_parser

    _, unknown = build_parser().parse_known_args(["serve", "--tpu-warmup-steps", "5", "--tpu-sync-steps", "3",
                                                  "--no-tpu-shape-padding", "--tpu-debug-metrics", "--listen",
                                                  "0.0.0.0"])
    assert unknown == ["--listen", "0.0.0.0"]
    s = settings("--tpu-warmup-steps", "5", "--tpu-sync-steps", "3", "--no-tpu-shape-padding",
                 "--tpu-debug-metrics").tpu
    assert (s.warmup_steps, s.sync_steps, s.shape_padding, s.debug_metrics) == (5, 3, False, True)


def test_defaults_and_off_switches():
    s = settings().tpu
    assert s == TPUSettings()
    assert s.warmup and s.shape_padding and s.compilation_cache and not s.autocast_bf16
    off = settings("--no-tpu-warmup", "--no-tpu-compilation-cache", "--no-tpu-autocast-bf16").tpu
    assert not off.warmup and not off.compilation_cache and not off.autocast_bf16


def test_manual_warmup_turns_automatic_warmup_off():
    s = settings("--tpu-manual-warmup").tpu
    assert s.manual_warmup and not s.warmup


@pytest.mark.parametrize(("argv", "environ", "message"), [
    (["--tpu-sync-steps", "0"], {}, "--tpu-sync-steps='0' is not allowed: --tpu-sync-steps takes a whole number"),
    (["--tpu-pad-multiple", "60"], {}, "--tpu-pad-multiple takes a multiple of 8 from 8 to 1024"),
    ([], {"COMFYX_TPU_WARMUP_STEPS": "many"}, "$COMFYX_TPU_WARMUP_STEPS='many' is not allowed"),
])
def test_bad_values_are_start_up_errors(argv, environ, message):
    with pytest.raises(SettingsError) as raised:
        settings(*argv, environ=environ)
    assert message in str(raised.value)


def test_enable_and_disable_together_is_a_usage_error():
    with pytest.raises(SystemExit):
        settings("--tpu-enable", "--tpu-disable")


def test_tpu_enable_means_backend_tpu_and_contradictions_are_errors():
    s = settings("--tpu-enable")
    assert s.backend.name == "tpu" and s.tpu.enable is True
    with pytest.raises(SettingsError, match="contradicts"):
        settings("--tpu-enable", "--backend", "cuda")
    with pytest.raises(SettingsError, match="contradicts"):
        settings("--tpu-disable", "--backend", "tpu")
    s = settings("--tpu-disable")
    assert s.backend.name == "auto" and s.tpu.enable is False
    assert settings(environ={"COMFYX_TPU_ENABLE": "0"}).tpu.enable is False


def test_backend_defaults_to_environment():
    assert settings(environ={"COMFYX_BACKEND": "cpu"}).backend.name == "cpu"
    assert settings("--backend", "ipex", environ={"COMFYX_BACKEND": "cpu"}).backend.name == "ipex"
    with pytest.raises(SettingsError, match=r"\$COMFYX_BACKEND='gpu' is not allowed: --backend takes one of auto, "
                       "cuda, ipex, tpu, cpu"):
        settings(environ={"COMFYX_BACKEND": "gpu"})


def test_auto_tries_cuda_then_xpu_then_tpu_then_the_cpu():
    asked = []

    def problem_of(accelerator: str) -> str | None:
        asked.append(accelerator)
        return None if accelerator == "xpu" else "absent"

    assert backends.auto_pick(problem_of) == ("ipex", ["cuda: absent"])
    assert asked == ["cuda", "xpu"]  # the TPU's runtime is not started once the XPU is taken
    assert backends.auto_pick(lambda accelerator: "absent") == (
        "cpu", ["cuda: absent", "xpu: absent", "xla: absent"])


def test_comfyui_args_per_backend():
    assert backends.comfyui_args("cpu", ["--port", "1"]) == ["--cpu", "--port", "1"]
    assert backends.comfyui_args("tpu", []) == ["--use-pytorch-cross-attention"]
    assert backends.comfyui_args("ipex", ["--cpu"]) == ["--cpu"]
    with pytest.raises(BackendUnavailableError, match="contradicts"):
        backends.comfyui_args("cuda", ["--cpu"])


def test_cli_rejects_a_contradiction_before_starting_comfyui(run_comfyx):
    proc = run_comfyx("serve", "--comfyui", "/nonexistent", "--tpu-enable", "--backend", "cpu")
    assert proc.returncode == 2
    assert "--tpu-enable contradicts --backend cpu" in proc.stderr
