"""``comfyx bench`` end to end on the CPU: real servers, the tiny models it generates, its report."""

import json
import re

import pytest

pytestmark = [pytest.mark.comfyui, pytest.mark.slow]


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    return tmp_path_factory.mktemp("bench-models")


@pytest.mark.parametrize(("model", "workflow"), [("sd15-tiny", "txt2img"), ("esrgan-tiny", "upscale")])
def test_bench_runs_stock_and_comfyx_side_by_side(run_comfyx, comfyui, models, tmp_path, model, workflow):
    out = tmp_path / "results"
    proc = run_comfyx("bench", "--comfyui", str(comfyui), "--models", str(models), "--model", model,
                      "--workflow", workflow, "--cpu", "--runs", "1", "--out", str(out),
                      "--config", "stock", "--config", "cx: comfyx --quantize fp8", timeout=900)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "comfyx bench: [cx] run 1/1" in proc.stdout  # progress while it runs
    if model == "sd15-tiny":  # the bf16 and fp8 files; no configuration ran NVFP4 or MXFP8: no such files
        checkpoints = sorted(p.name for p in (models / "checkpoints").iterdir())
        assert checkpoints == ["comfyx-sd15-tiny-fp8.safetensors", "comfyx-sd15-tiny.safetensors"], checkpoints
    report = json.loads((out / f"e2e-{model}-{workflow}.json").read_text())
    summary = report["summary"]
    assert set(summary) == {"stock", "cx"} and report["reference"] == "stock"
    for name in summary:
        assert summary[name]["end_to_end_s"] > 0 and summary[name]["first_run_s"] > 0
        assert summary[name]["peak_vram_mib"] is None and summary[name]["energy_j_per_image"] is None
    assert report["gpu_figures"].startswith("n/a: ")  # and says why
    # on a CPU --quantize leaves the model as it is (no fp8 GEMMs here): the same image as stock
    assert summary["cx"]["identical_pixels"], summary["cx"]
    if workflow == "txt2img":
        assert summary["stock"]["it_per_s"] > 0 and report["configs"][0]["runs"][0]["steps"] == 4
    assert (out / f"e2e-{model}-{workflow}.png").exists() or report["chart"].startswith("not drawn: ")
    assert "it/s" in proc.stdout and "reference: stock" in proc.stdout  # the table


def test_interleave_takes_the_timed_runs_in_rounds(run_comfyx, comfyui, models, tmp_path):
    out = tmp_path / "results"
    proc = run_comfyx("bench", "--comfyui", str(comfyui), "--models", str(models), "--model", "sd15-tiny",
                      "--cpu", "--runs", "2", "--interleave", "--out", str(out),
                      "--config", "a: stock", "--config", "bad: comfyx --no-such-flag",
                      "--config", "b: comfyx --engine stock", timeout=900)
    assert proc.returncode == 1, proc.stdout[-3000:] + proc.stderr[-3000:]  # a configuration failed
    runs = re.findall(r"^comfyx bench: \[(\w+)\] (first run|run \d/\d):", proc.stdout, re.MULTILINE)
    order = [" ".join(run) for run in runs]
    assert order == ["a first run", "b first run", "a run 1/2", "b run 1/2", "a run 2/2", "b run 2/2"], order
    report = json.loads((out / "e2e-sd15-tiny-txt2img.json").read_text())
    assert report["interleaved"] is True
    configs = {c["config"]["name"]: c for c in report["configs"]}
    assert [r["seed"] for r in configs["a"]["runs"]] == [r["seed"] for r in configs["b"]["runs"]] == [2, 3]
    assert configs["bad"]["error"] and not configs["bad"]["runs"]  # one that cannot start loses no other's runs
    assert report["summary"]["b"]["identical_pixels"]  # same seeds, same image: the runs were matched



def test_comfyx_runs_the_nvfp4_and_mxfp8_files_it_generates_when_asked(run_comfyx, comfyui, tmp_path):
    from safetensors.torch import load_file

    models, out = tmp_path / "models", tmp_path / "results"
    proc = run_comfyx("bench", "--comfyui", str(comfyui), "--models", str(models), "--model", "sd15-tiny",
                      "--cpu", "--runs", "1", "--steps", "2", "--out", str(out), "--config", "cx: comfyx",
                      "--config", "nv: comfyx@nvfp4", "--config", "mx: comfyx@mxfp8", timeout=900)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "the diffusion model as mxfp8, nvfp4 too" in proc.stderr  # (comfyx says what it does on stderr)
    checkpoints = sorted(p.name for p in (models / "checkpoints").iterdir())
    assert checkpoints == sorted(f"comfyx-sd15-tiny{s}.safetensors" for s in ("", "-fp8", "-mxfp8", "-nvfp4"))
    report = json.loads((out / "e2e-sd15-tiny-txt2img.json").read_text())
    assert set(report["models"]["variants"]) == {"fp8", "nvfp4", "mxfp8"}
    # quantized: the transformer blocks' Linear layers, those --quantize quantizes at load by default, no other
    bf16 = load_file(str(models / "checkpoints" / "comfyx-sd15-tiny.safetensors"))
    blocks = sum(1 for key, value in bf16.items() if key.startswith("model.diffusion_model.")
                 and ".transformer_blocks." in key and key.endswith(".weight") and value.ndim == 2)
    assert blocks > 0
    configs = {c["config"]["name"]: c for c in report["configs"]}
    for name, fmt in (("nv", "nvfp4"), ("mx", "mxfp8")):
        assert configs[name]["config"]["file_format"] == fmt and not configs[name]["error"]
        loaded = f"comfyx kernels: SD15 checkpoint with comfy_quant layers ({blocks} {fmt}): loading them as scaled"
        assert any(loaded in line for line in configs[name]["log_lines"]), configs[name]["log_lines"]
        # the bf16 model's image within the format's error (the file read without its scales: 33 dB)
        psnr = report["summary"][name]["psnr_db"]
        assert psnr is not None and 45.0 < psnr < float("inf"), (fmt, psnr)


def test_profile_warm_restart_says_where_the_restarted_servers_first_run_went(run_comfyx, comfyui, models, tmp_path):
    from comfyx.bench import profile

    if profile.py_spy() is None:
        pytest.skip("needs py-spy (pip install py-spy; CI installs it)")
    out = tmp_path / "results"
    proc = run_comfyx("bench", "--comfyui", str(comfyui), "--models", str(models), "--model", "sd15-tiny",
                      "--cpu", "--runs", "1", "--steps", "2", "--out", str(out), "--profile-warm-restart",
                      "--config", "cx: comfyx --compile --compile-cuda-graphs", timeout=900)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    report = json.loads((out / "e2e-sd15-tiny-txt2img.json").read_text())
    assert report["summary"]["cx"]["warm_restart_first_step_s"] > 0
    # a UNet compiles whole, and CUDA graphs asked for on the CPU: it compiles without them, saying why
    log_lines = report["configs"][0]["log_lines"]
    assert any("no CUDA graphs: the model runs on cpu" in line for line in log_lines), log_lines
    stacks = (out / "cx-warm-restart.pyspy").read_text()
    assert "prompt_worker (" in stacks  # py-spy sampled the server's threads until the bench stopped it
    summary = (out / "cx-warm-restart.txt").read_text().splitlines()
    if summary[0].startswith("py-spy failed "):  # reads that failed while the stacks changed, said first
        summary = summary[1:]
    samples = int(summary[0].split()[0])
    assert samples > 0, summary
    functions = [line.split("s  ", 1)[1] for line in summary[1:] if not line.startswith("#")]
    assert any(f.startswith("KSampler.sample (nodes.py:") for f in functions), functions  # the sampler node
    assert any(f.startswith("CompiledModel.run (comfyx/compile/apply.py:") for f in functions), functions


def test_shared_caches_start_the_later_configurations_warm(run_comfyx, comfyui, models, tmp_path):
    out = tmp_path / "results"
    proc = run_comfyx("bench", "--comfyui", str(comfyui), "--models", str(models), "--model", "sd15-tiny",
                      "--cpu", "--runs", "1", "--steps", "2", "--out", str(out), "--shared-caches",
                      "--config", "a: comfyx --compile --engine stock", "--config", "b: comfyx --compile",
                      timeout=900)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    report = json.loads((out / "e2e-sd15-tiny-txt2img.json").read_text())
    assert report["shared_caches"] is True
    first, second = (next(line for line in c["log_lines"] if "FX graph cache" in line) for c in report["configs"])
    # the first configuration compiled cold into the shared caches, the second found its graph there
    assert re.search(r"FX graph cache \d+ hit\(s\) / [1-9]\d* miss", first), first
    assert re.search(r"FX graph cache [1-9]\d* hit\(s\) / 0 miss", second), second
    assert all(s["warm_restart_first_step_s"] is None for s in report["summary"].values())


def test_shared_caches_and_a_warm_restart_profile_are_refused_together(run_comfyx, comfyui, models, tmp_path):
    proc = run_comfyx("bench", "--comfyui", str(comfyui), "--models", str(models), "--model", "sd15-tiny",
                      "--cpu", "--out", str(tmp_path), "--shared-caches", "--profile-warm-restart", timeout=120)
    assert proc.returncode != 0 and "choose one" in proc.stderr + proc.stdout, proc.stderr[-2000:]
