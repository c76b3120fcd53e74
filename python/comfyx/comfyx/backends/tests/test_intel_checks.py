"""The IPEX checks as pure functions: version pairs and CPU instruction sets."""

from pathlib import Path

import pytest
from comfyx.backends import cpuinfo, intel


@pytest.mark.parametrize(("torch_version", "ipex", "problem"), [
    ("2.8.0+cu128", "2.8.0", None),
    ("2.8.1", "2.8.0+cpu", None),
    ("2.9.0", "2.8.0", "intel-extension-for-pytorch 2.8.0 needs torch 2.8.*, but torch is 2.9.0"),
    ("2.8.0", None, "intel-extension-for-pytorch is not installed"),
])
def test_version_pair(torch_version, ipex, problem):
    assert intel.version_pair_problem(torch_version, ipex) == problem


def test_bf16_prepack_message_explains_onednns_answer():
    assert intel.bf16_prepack_problem(True, set(), None) is None
    problem = intel.bf16_prepack_problem(False, {"sse4_2", "avx", "avx2", "fma"}, None)
    assert problem is not None and "AVX-512 (avx512bw/vl/dq) or AVX-NE-CONVERT" in problem
    assert "CPU flags: avx, avx2)" in problem
    limited = intel.bf16_prepack_problem(False, {"avx2", "avx512bw"}, "AVX2")
    assert limited.endswith("CPU flags: avx2, avx512bw, limited by ONEDNN_MAX_CPU_ISA=AVX2)")


def test_cpu_flags_reads_the_kernels_list(tmp_path: Path):
    path = tmp_path / "cpuinfo"
    path.write_text("processor\t: 0\nflags\t\t: fpu sse avx2\n\nprocessor\t: 1\nflags\t\t: fpu sse avx2\n")
    assert cpuinfo.cpu_flags(path) == {"fpu", "sse", "avx2"}
    assert cpuinfo.cpu_flags(tmp_path / "missing") == set()
