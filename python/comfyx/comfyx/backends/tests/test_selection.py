"""Backend selection and the TPU options, as `comfyx` parses them (no torch needed)."""

import pytest
from comfyx import backends
from comfyx.backends import BackendUnavailableError
from comfyx.backends.tpu import settings
from comfyx.cli.main import build_parser


def parse(*argv: str):
    args, unknown = build_parser().parse_known_args(["serve", *argv])
    return args, unknown


@pytest.fixture(autouse=True)
def _restore_settings():
    yield
    settings.set_current(settings.TPUSettings())


def test_tpu_flags_are_comfyx_options_not_comfyui_arguments():
    args, unknown = parse("--tpu-warmup-steps", "5", "--tpu-sync-steps", "3", "--no-tpu-shape-padding",
                          "--tpu-debug-metrics", "--listen", "0.0.0.0")
    assert unknown == ["--listen", "0.0.0.0"]
    s = settings.from_args(args)
    assert (s.warmup_steps, s.sync_steps, s.shape_padding, s.debug_metrics) == (5, 3, False, True)


def test_defaults_and_off_switches():
    s = settings.from_args(parse()[0])
    assert s == settings.TPUSettings()
    assert s.warmup and s.shape_padding and s.compilation_cache and not s.autocast_bf16
    off = settings.from_args(parse("--no-tpu-warmup", "--no-tpu-compilation-cache", "--no-tpu-autocast-bf16")[0])
    assert not off.warmup and not off.compilation_cache and not off.autocast_bf16


def test_manual_warmup_turns_automatic_warmup_off():
    s = settings.from_args(parse("--tpu-manual-warmup")[0])
    assert s.manual_warmup and not s.warmup


@pytest.mark.parametrize("argv", [["--tpu-sync-steps", "0"], ["--tpu-pad-multiple", "60"],
                                  ["--tpu-enable", "--tpu-disable"]])
def test_bad_values_are_usage_errors(argv):
    with pytest.raises(SystemExit):
        parse(*argv)


def test_tpu_enable_means_backend_tpu_and_contradictions_are_errors():
    assert backends.configure(parse("--tpu-enable")[0]) == "tpu"
    assert settings.current().enable is True
    with pytest.raises(BackendUnavailableError, match="contradicts"):
        backends.configure(parse("--tpu-enable", "--backend", "cuda")[0])
    with pytest.raises(BackendUnavailableError, match="contradicts"):
        backends.configure(parse("--tpu-disable", "--backend", "tpu")[0])
    assert backends.configure(parse("--tpu-disable")[0]) == "auto"
    assert settings.current().enable is False


def test_backend_defaults_to_environment(monkeypatch):
    monkeypatch.setenv(backends.BACKEND_ENV, "cpu")
    assert backends.configure(parse()[0]) == "cpu"
    monkeypatch.setenv(backends.BACKEND_ENV, "gpu")
    with pytest.raises(BackendUnavailableError, match="unknown backend 'gpu'"):
        backends.configure(parse()[0])


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
