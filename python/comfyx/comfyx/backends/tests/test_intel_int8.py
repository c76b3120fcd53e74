"""``--ipex-int8``: how it is asked for, and the checks that say where int8 cannot run (no IPEX needed)."""

import pytest
from comfyx.backends import intel_int8
from comfyx.settings.spec import SettingsError
from comfyx.testing.settings import startup

AVX512_VNNI_CPU = {"avx", "avx2", "avx512f", "avx512bw", "avx512_vnni"}


def configure(*argv: str, environ: dict[str, str] | None = None) -> tuple[str, bool]:
    """(backend, int8) as comfyx serve ARGV would start with them."""
    settings = startup(*argv, environ=environ).settings
    return settings.backend.name, settings.intel.int8


@pytest.mark.parametrize("level", ["AVX2_VNNI", "AVX512_VNNI", "AVX512_BF16", "AMX"])
def test_vnni_levels_run_int8(level):
    assert intel_int8.isa_problem(level, AVX512_VNNI_CPU, None) is None


def test_a_level_newer_than_ipex_names_runs_int8_on_a_vnni_cpu():
    # IPEX 2.8 calls oneDNN's AMX-FP16 and AVX10 levels "WrongLevel"; such CPUs have VNNI
    assert intel_int8.isa_problem("WrongLevel", {"avx512_vnni", "amx_int8", "amx_fp16"}, None) is None


@pytest.mark.parametrize(("level", "flags", "max_isa", "why"), [
    ("AVX2", AVX512_VNNI_CPU, "AVX2", ("(oneDNN ISA level AVX2; CPU flags: avx, avx2, avx512_vnni, avx512bw, "
                                       "avx512f, limited by ONEDNN_MAX_CPU_ISA=AVX2)")),
    ("AVX512", {"avx2", "avx512f"}, None, "(oneDNN ISA level AVX512; CPU flags: avx2, avx512f)"),
    ("AVX2", {"avx", "avx2"}, None, "(oneDNN ISA level AVX2; CPU flags: avx, avx2)"),
    ("WrongLevel", {"sse4_2"}, None, "(oneDNN ISA level WrongLevel; CPU flags: no AVX flags)"),
    ("WrongLevel", AVX512_VNNI_CPU, "SSE41", "limited by ONEDNN_MAX_CPU_ISA=SSE41)"),
])
def test_without_vnni_int8_is_refused_with_the_reason(level, flags, max_isa, why):
    problem = intel_int8.isa_problem(level, flags, max_isa)
    assert problem.startswith("int8 needs VNNI (avx512_vnni / avx_vnni / amx_int8), which oneDNN cannot use here")
    assert problem.endswith(why)


@pytest.mark.parametrize(("value", "wanted"), [("1", True), ("on", True), ("0", False), ("", False), (None, False)])
def test_env_asks_for_int8(value, wanted):
    environ = {} if value is None else {"COMFYX_IPEX_INT8": value}
    assert configure(environ=environ)[1] is wanted


def test_a_bad_env_value_is_an_error_naming_the_variable():
    with pytest.raises(SettingsError, match=r"\$COMFYX_IPEX_INT8='maybe' is not allowed: --ipex-int8 takes on or off"):
        configure(environ={"COMFYX_IPEX_INT8": "maybe"})


def test_flag_asks_for_int8_and_picks_the_ipex_backend():
    assert configure("--ipex-int8") == ("ipex", True)
    assert configure("--backend", "ipex", "--no-ipex-int8") == ("ipex", False)
    assert configure() == ("auto", False)


def test_env_asks_for_int8_and_the_flag_overrides_it():
    assert configure("--backend", "ipex", environ={"COMFYX_IPEX_INT8": "1"}) == ("ipex", True)
    assert configure("--no-ipex-int8", environ={"COMFYX_IPEX_INT8": "1"}) == ("auto", False)


@pytest.mark.parametrize(("argv", "other"), [
    (("--backend", "cuda"), "--backend cuda"), (("--backend", "cpu"), "--backend cpu"),
    (("--tpu-enable",), "--tpu-enable"),
])
def test_int8_contradicts_other_backends(argv, other):
    with pytest.raises(SettingsError, match=f"--ipex-int8 \\(or \\$COMFYX_IPEX_INT8=1\\) needs --backend ipex, "
                       f"not {other}"):
        configure("--ipex-int8", *argv)


def test_int8_is_refused_off_the_cpu_and_for_other_dtypes():
    torch = pytest.importorskip("torch")
    on_meta = torch.nn.Linear(4, 4, device="meta")  # a device other than the CPU, as an XPU would be
    assert intel_int8.problem(on_meta, torch) == (
        "int8 runs on the CPU only: IPEX 2.8's dynamic quantization makes torch.ao quantized Linear layers, "
        "which have no meta kernels")
    assert intel_int8.problem(torch.nn.Linear(4, 4, dtype=torch.bfloat16), torch) == (
        "int8 quantizes float32 weights, not torch.bfloat16")
