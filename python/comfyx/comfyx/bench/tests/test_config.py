"""comfyx bench's configurations and report (no ComfyUI needed)."""

import os

import pytest
from comfyx.bench.report import table
from comfyx.bench.run import BUILTIN_CONFIGS, BenchError, Config, ConfigResult, RunResult, file_formats, report


def test_builtin_names_and_specs_parse():
    assert Config.parse("stock-best") == Config("stock-best", "stock", "fp8", True, ("--fast", "fp8_matrix_mult"))
    mine = Config.parse("mine: comfyx@fp8 --quantize-layers all -- --reserve-vram 2")
    assert mine == Config("mine", "comfyx", "fp8", False, ("--quantize-layers", "all", "--", "--reserve-vram", "2"))
    assert Config.parse("plain: comfyx --fast") == Config("plain", "comfyx", None, False, ("--fast",))
    assert all(Config.parse(name).name == name for name in BUILTIN_CONFIGS)


@pytest.mark.parametrize("fmt", ["nvfp4", "mxfp8"])
def test_comfyx_runs_the_nvfp4_and_mxfp8_files(fmt):
    config = Config.parse(f"q: comfyx@{fmt}+compile --fast -- --reserve-vram 2")
    assert config == Config("q", "comfyx", fmt, True, ("--fast", "--", "--reserve-vram", "2"))
    assert config.describe() == f"comfyx@{fmt}+compile --fast -- --reserve-vram 2"
    assert Config.parse(f"q: {config.describe()}") == config
    assert Config.parse(f"q: comfyx@{fmt}").file_format == fmt and not Config.parse(f"q: comfyx@{fmt}").compile_node


@pytest.mark.parametrize("spec", ["s: stock@nvfp4", "s: stock@mxfp8+compile --fast fp8_matrix_mult"])
def test_stock_is_refused_the_files_it_cannot_load(spec):
    fmt = "nvfp4" if "nvfp4" in spec else "mxfp8"
    with pytest.raises(BenchError, match=rf"configuration 's': stock ComfyUI v0\.3\.64 cannot load the {fmt} file "
                       rf".*run it as comfyx@{fmt}"):
        Config.parse(spec)
    assert Config.parse("s: stock@fp8").file_format == "fp8"  # the fp8 file it loads


@pytest.mark.parametrize("spec", ["nonsense", "x: docker", ": stock", "x:", "x: comfyx@fp4", "x: comfyx@",
                                  "x: stock+compile@fp8", "x: comfyx@nvfp4@fp8", "x: nvfp4@comfyx"])
def test_bad_specs_say_what_is_wrong(spec):
    with pytest.raises(BenchError, match="configuration"):
        Config.parse(spec)


def test_an_unknown_format_names_the_known_ones():
    with pytest.raises(BenchError, match="@fp4 is no model file format; the formats are @fp8, @nvfp4, @mxfp8"):
        Config.parse("x: comfyx@fp4")


def test_the_file_formats_a_run_needs():
    configs = [Config.parse(spec) for spec in ("stock", "stock-best", "a: comfyx@nvfp4", "b: comfyx@nvfp4+compile")]
    assert file_formats(configs, "sdxl") == ("fp8", "nvfp4")
    assert file_formats(configs[:1], "flux") == ()
    assert file_formats(configs, "esrgan-tiny") == ()  # an upscaler has no diffusion model to run in them


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


def test_missing_models_are_named_with_the_command_that_makes_them(tmp_path):
    import json
    import re

    from comfyx.bench.run import Plan, execute
    from comfyx.bench.workflows import Shape

    configs = [Config.parse("a: comfyx"), Config.parse("b: comfyx@nvfp4")]
    plan = Plan(tmp_path / "ComfyUI", tmp_path, "sd15-tiny", "txt2img", configs, Shape(64, 64, 4, 7.0))
    command = f"python -m comfyx.bench.models --comfyui {tmp_path / 'ComfyUI'} --out {tmp_path} --file-format nvfp4"
    expected = f"has no sd15-tiny models: generate them with `{command} sd15-tiny`"
    with pytest.raises(BenchError, match=re.escape(expected)):
        execute(plan)
    (tmp_path / "manifest.json").write_text(json.dumps({"sd15-tiny": {"variants": {"fp8": {}}}}))
    with pytest.raises(BenchError, match=r"has no nvfp4 file of the sd15-tiny diffusion model: generate it with "
                                         r"`python -m comfyx\.bench\.models .* --file-format nvfp4 sd15-tiny`"):
        execute(plan)


def test_each_node_gets_the_peak_of_its_own_window():
    from comfyx.bench.device import DeviceMonitor
    from comfyx.bench.run import measure
    from comfyx.bench.server import PromptRun

    run = PromptRun("p", posted=0.0, finished=3.0)
    for t, event, node in [(0.1, "executing", "4"), (1.0, "executing", "sampler"), (1.2, "progress", "sampler"),
                           (2.0, "executing", "8"), (2.9, "executing", "9")]:
        run.events.append((event, {"node": node, "prompt_id": "p"}))
        run.times.append(t)
    monitor = DeviceMonitor(pid=0)
    monitor.reason = None  # the samples below stand in for NVML's (a CPU machine has none)
    mib = 1 << 20
    # the decode raises the level to 700; the save after it holds it there
    monitor.samples = [(0.5, 100 * mib), (1.5, 300 * mib), (2.2, 700 * mib), (2.95, 700 * mib)]
    prompt = {"4": {"class_type": "CheckpointLoaderSimple"}, "sampler": {"class_type": "KSampler"},
              "8": {"class_type": "VAEDecode"}, "9": {"class_type": "SaveImage"}}
    result = measure(run, 1, monitor, (None, None), prompt)
    assert result.node_peak_vram_mib == {"4 CheckpointLoaderSimple": 100.0, "sampler KSampler": 300.0,
                                         "8 VAEDecode": 700.0, "9 SaveImage": 700.0}
    assert result.peak_vram_mib == 700.0 and result.sampling_peak_vram_mib == 300.0
    assert result.peak_vram_node == "8 VAEDecode"
    config = ConfigResult(Config.parse("stock"), first=result, runs=[result])
    assert config.summary()["peak_vram_node"] == "8 VAEDecode"


def test_environment_assignments_before_the_kind_go_to_that_server():
    config = Config.parse("exp: PYTORCH_CUDA_ALLOC_CONF=expandable_segments:True CUDNN_CONV_WSCAP_DBG=256 "
                          "comfyx --fast -- --reserve-vram 2")
    assert config.env == (("PYTORCH_CUDA_ALLOC_CONF", "expandable_segments:True"), ("CUDNN_CONV_WSCAP_DBG", "256"))
    assert config.kind == "comfyx" and config.args == ("--fast", "--", "--reserve-vram", "2")
    assert Config.parse(f"exp: {config.describe()}") == config
    assert Config.parse("s: A='x y' stock").env == (("A", "x y"),)
    assert Config.parse("s: stock X=1").env == () and Config.parse("s: stock X=1").args == ("X=1",)  # an argument
    with pytest.raises(BenchError, match="configuration 'e': no kind after its environment"):
        Config.parse("e: A=1")


def test_a_configurations_environment_reaches_its_server(tmp_path):
    from comfyx.bench.run import Plan, _server
    from comfyx.bench.workflows import Shape

    config = Config.parse("exp: PYTORCH_CUDA_ALLOC_CONF=expandable_segments:True comfyx --fast")
    plan = Plan(tmp_path / "ComfyUI", tmp_path, "sd15-tiny", "txt2img", [config], Shape(64, 64, 4, 7.0))
    server = _server(plan, config, tmp_path, "first")
    assert server.env["PYTORCH_CUDA_ALLOC_CONF"] == "expandable_segments:True"
    other = _server(plan, Config.parse("comfyx-fast"), tmp_path, "first")  # the bench's own environment
    assert other.env.get("PYTORCH_CUDA_ALLOC_CONF") == os.environ.get("PYTORCH_CUDA_ALLOC_CONF")
