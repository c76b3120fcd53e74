"""Autotuned kernels keep their tuning results on disk, so a restarted process reads them instead
of timing every config again (Triton 3.4+; the interpreter does not tune)."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from comfyx_kernels.backends import triton_kernels

from .helpers import available_backends

TUNE_ONCE = """
import torch, comfyx_kernels as cx
x = torch.randn(256, 256, device="cuda", dtype=torch.bfloat16)
cx.quantize_nvfp4(x, (x.abs().amax().float() / 2688).reshape(()), backend="triton")
torch.cuda.synchronize()
"""


@pytest.mark.skipif(
    triton_kernels.INTERPRETING or "triton" not in available_backends(),
    reason="tuning needs Triton on a GPU",
)
@pytest.mark.skipif(
    not triton_kernels.CACHE_RESULTS, reason="Triton before 3.4 keeps no tuning results"
)
def test_tuning_results_are_written_to_the_cache_directory(tmp_path):
    env = {**os.environ, "TRITON_CACHE_DIR": str(tmp_path)}
    subprocess.run([sys.executable, "-c", TUNE_ONCE], env=env, check=True, timeout=300)
    assert list(tmp_path.rglob("quantize_nvfp4_kernel.autotune.json")), sorted(
        p.name for p in tmp_path.rglob("*")
    )
