"""comfyx bench's configurations and report (no ComfyUI needed)."""

import pytest
from comfyx.bench.report import table
from comfyx.bench.run import BUILTIN_CONFIGS, BenchError, Config, ConfigResult, RunResult, report


def test_builtin_names_and_specs_parse():
    assert Config.parse("stock-best") == Config("stock-best", "stock", True, True, ("--fast", "fp8_matrix_mult"))
    mine = Config.parse("mine: comfyx@fp8 --quantize-layers all -- --reserve-vram 2")
    assert mine == Config("mine", "comfyx", True, False, ("--quantize-layers", "all", "--", "--reserve-vram", "2"))
    assert all(Config.parse(name).name == name for name in BUILTIN_CONFIGS)


@pytest.mark.parametrize("spec", ["nonsense", "x: docker", ": stock", "x:"])
def test_bad_specs_say_what_is_wrong(spec):
    with pytest.raises(BenchError, match="configuration"):
        Config.parse(spec)


def test_only_comfyx_own_flags_mean_it_compiles():
    assert Config.parse("c: comfyx --fast").compiles
    assert Config.parse("c: comfyx --compile").compiles and not Config.parse("c: comfyx --fast --no-compile").compiles
    assert not Config.parse("c: comfyx -- --fast fp8_matrix_mult").compiles  # ComfyUI's --fast is another flag
    assert not Config.parse("stock-fp8").compiles and Config.parse("stock-best").compiles


def test_report_ratios_against_the_reference_and_na_without_a_gpu(tmp_path):
    from comfyx.bench.run import Plan
    from comfyx.bench.workflows import Shape

    def result(name: str, e2e: float, rate: float) -> ConfigResult:
        out = ConfigResult(Config.parse(f"{name}: stock"))
        out.runs = [RunResult(seed=seed, end_to_end_s=e2e, it_per_s=rate) for seed in (2, 3)]
        return out

    plan = Plan(tmp_path, tmp_path, "sd15-tiny", "txt2img", [], Shape(64, 64, 4, 7.0))
    data = report(plan, [result("a", 2.0, 4.0), result("b", 1.0, 10.0)], "a", None, 1.0)
    assert data["summary"]["b"]["speedup_end_to_end"] == 2.0 and data["summary"]["b"]["speedup_it_per_s"] == 2.5
    text = table(data)
    assert "2.50×" in text and "n/a" in text  # no VRAM or energy figures on this machine
