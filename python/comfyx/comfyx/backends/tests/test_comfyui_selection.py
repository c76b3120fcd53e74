"""Backend selection as `comfyx serve` does it on real ComfyUI (COMFYUI_PATH), in any of the venvs.

ComfyUI's --quick-test-for-ci exits right after start-up, so each case costs one start.
"""

import importlib.util
import json
import os

import pytest

pytestmark = [pytest.mark.comfyui]

HAS_XLA = importlib.util.find_spec("torch_xla") is not None
HAS_IPEX = importlib.util.find_spec("intel_extension_for_pytorch") is not None


def environ(drop: tuple[str, ...] = (), **extra: str) -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if k not in drop} | extra


def start(run_comfyx, comfyui, *comfyx_args, env=None):
    return run_comfyx("serve", "--comfyui", str(comfyui), *comfyx_args, "--", "--quick-test-for-ci", env=env)


@pytest.mark.skipif(HAS_XLA, reason="checks the message where torch_xla is missing")
def test_tpu_without_torch_xla_stops_with_the_reason(run_comfyx, comfyui):
    proc = start(run_comfyx, comfyui, "--backend", "tpu")
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert "--backend tpu: torch_xla is not installed (pip install torch==2.9.0 torch_xla==2.9.0)" in proc.stderr


@pytest.mark.skipif(HAS_IPEX, reason="checks the message where IPEX is missing")
def test_ipex_without_xpu_or_ipex_stops_with_the_reason(run_comfyx, comfyui):
    proc = start(run_comfyx, comfyui, "--backend", "ipex")
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert ("--backend ipex: no Intel XPU device and IPEX for the CPU cannot be used: "
            "intel-extension-for-pytorch is not installed") in proc.stderr


def test_cuda_without_a_device_stops_with_the_reason(run_comfyx, comfyui):
    proc = start(run_comfyx, comfyui, "--backend", "cuda")
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert "--backend cuda: torch" in proc.stderr and "sees no CUDA device" in proc.stderr


def test_auto_without_accelerators_runs_on_the_cpu_and_says_why(run_comfyx, comfyui):
    proc = start(run_comfyx, comfyui, "--backend", "auto", env=environ(drop=("PJRT_DEVICE",)))
    assert proc.returncode == 0, proc.stderr[-2000:]
    output = proc.stdout + proc.stderr
    assert "comfyx backend cpu: no accelerator (cuda: torch" in output
    assert "Device: cpu" in output
    if HAS_XLA:
        assert "xla: torch_xla found no TPU (its runtime would be CPU; set PJRT_DEVICE to use it anyway)" in output


@pytest.mark.skipif(not HAS_XLA, reason="torch_xla is not installed")
def test_auto_takes_the_xla_device_when_pjrt_device_asks_for_it(run_comfyx, comfyui, tmp_path):
    env = environ(PJRT_DEVICE="CPU", COMFYX_CACHE_DIR=str(tmp_path))
    proc = start(run_comfyx, comfyui, "--backend", "auto", env=env)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "comfyx backend tpu: XLA device xla:0 (PJRT CPU" in proc.stdout + proc.stderr


@pytest.mark.skipif(not HAS_XLA, reason="torch_xla is not installed")
@pytest.mark.parametrize(("pjrt", "auto"), [("CPU", "tpu"), (None, "cpu")])
def test_doctor_agrees(run_comfyx, pjrt, auto):
    env = environ(drop=("PJRT_DEVICE",), **({"PJRT_DEVICE": pjrt} if pjrt else {}))
    report = json.loads(run_comfyx("doctor", "--json", env=env).stdout)
    assert report["backend"]["auto"] == auto
