"""The IPEX checks as pure functions: version pairs and CPU instruction sets."""

from pathlib import Path

import pytest
from comfyx.backends import intel


@pytest.mark.parametrize(("torch_version", "ipex", "problem"), [
    ("2.8.0+cu128", "2.8.0", None),
    ("2.8.1", "2.8.0+cpu", None),
    ("2.9.0", "2.8.0", "intel-extension-for-pytorch 2.8.0 needs torch 2.8.*, but torch is 2.9.0"),
    ("2.8.0", None, "intel-extension-for-pytorch is not installed"),
])
def test_version_pair(torch_version, ipex, problem):
    assert intel.version_pair_problem(torch_version, ipex) == problem


def test_bf16_prepack_needs_avx512_or_avx_ne_convert():
    avx2_only = {"sse4_2", "avx", "avx2", "fma"}
    problem = intel.bf16_prepack_problem(avx2_only)
    assert problem is not None and "AVX-512" in problem and "avx, avx2" in problem
    assert intel.bf16_prepack_problem(avx2_only | {"avx512bw", "avx512vl", "avx512dq"}) is None
    assert intel.bf16_prepack_problem(avx2_only | {"avx_ne_convert"}) is None
    assert intel.bf16_prepack_problem(avx2_only | {"avx512bw"}) is not None


def test_cpu_flags_reads_the_kernels_list(tmp_path: Path):
    cpuinfo = tmp_path / "cpuinfo"
    cpuinfo.write_text("processor\t: 0\nflags\t\t: fpu sse avx2\n\nprocessor\t: 1\nflags\t\t: fpu sse avx2\n")
    assert intel.cpu_flags(cpuinfo) == {"fpu", "sse", "avx2"}
    assert intel.cpu_flags(tmp_path / "missing") == set()
