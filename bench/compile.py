"""torch.compile on ComfyUI models: eager vs ComfyUI's TorchCompileModel vs comfyx's speed mode.

Models (random weights, bf16, built from ComfyUI's own classes and called through
``BaseModel.apply_model`` with the ModelPatcher's wrappers, as the sampler calls them):
an SDXL UNet at 1024² with the cfg pair (batch 2) and a Flux-like DiT (Flux's blocks at
full width, fewer of them) at 1024², batch 1.

Every stage runs in a fresh process with a time limit; the compiled stages get a fresh
cache directory, except ``*-warm`` stages, which reuse the one their cold stage filled
(a restart with warm caches). Steady state is the median of per-step device times
(CUDA events) after warm-up; first steps are host time to a device sync. Compiled stages
record AOTAutograd's cache outcome (``aot_cache``: hits, misses, saves, bypasses and torch's
reason for each bypass) and torch's time per compile phase (``compile_phases_s``), so a warm
first step shows what it still spends its time on.

    python bench/compile.py --comfyui /path/to/ComfyUI [--stages a,b] [--out bench/results]

writes ``compile.json`` (and ``compile.png`` where matplotlib is installed).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from comfyx.bench.models import FLUX, SDXL_UNET

ROOT = Path(__file__).resolve().parents[1]

# Flux.1's block widths; 4 double + 8 single blocks instead of 19 + 38 (the per-block work is Flux's)
FLUX_LIKE = {**FLUX, "depth": 4, "depth_single_blocks": 8}
# latent sizes (1024², 832×1216, 1216×832)
RESOLUTIONS = [(128, 128), (104, 152), (152, 104)]
STEADY_STEPS = 20
WARM_STEPS = 3

# Candidate inductor options for the speed preset, tried by the sweep stages ("sdxl-cand:NAME")
CANDIDATES: dict[str, dict[str, Any]] = {
    "gemm-autotune": {"max_autotune": True, "max_autotune_conv_backends": "ATEN", "conv_1x1_as_mm": True},
    "coord-descent": {"coordinate_descent_tuning": True, "conv_1x1_as_mm": True},
    # a C++ host wrapper instead of Python: less launch overhead per step
    "cpp-wrapper": {"cpp_wrapper": True},
}


# ---------------------------------------------------------------- in the stage process


def _setup(comfyui: Path) -> None:
    sys.path.insert(0, str(comfyui))
    sys.path.insert(0, str(ROOT / "python" / "comfyx"))


def _randomize(module: Any) -> None:
    import torch

    generator = torch.Generator(device="cuda").manual_seed(0)
    with torch.no_grad():
        for param in module.parameters():
            param.copy_(torch.randn(param.shape, generator=generator, device="cuda", dtype=param.dtype) * 0.02)


def _patcher(kind: str) -> Any:
    import comfy.model_base
    import comfy.model_patcher
    import comfy.supported_models
    import torch

    if kind == "sdxl":
        config = comfy.supported_models.SDXL(dict(SDXL_UNET))
        config.set_inference_dtype(torch.bfloat16, None)
        base = comfy.model_base.SDXL(config, device="cuda")
    else:
        config = comfy.supported_models.Flux(dict(FLUX_LIKE))
        config.set_inference_dtype(torch.bfloat16, None)
        base = comfy.model_base.Flux(config, device="cuda")
    _randomize(base)
    device = torch.device("cuda")
    return comfy.model_patcher.ModelPatcher(base, load_device=device, offload_device=device)


def _step_fn(kind: str, patcher: Any, height: int, width: int) -> Callable[[], Any]:
    """One model call at a latent size, through apply_model and the patcher's wrappers."""
    import comfy.patcher_extension
    import torch

    g = torch.Generator(device="cuda").manual_seed(1)
    if kind == "sdxl":
        batch, channels = 2, 4
        conds = {"c_crossattn": torch.randn(batch, 77, 2048, generator=g, device="cuda"),
                 "y": torch.randn(batch, 2816, generator=g, device="cuda")}  # fmt: skip
    else:
        batch, channels = 1, 16
        conds = {"c_crossattn": torch.randn(batch, 512, 4096, generator=g, device="cuda"),
                 "y": torch.randn(batch, 768, generator=g, device="cuda"),
                 "guidance": torch.full((batch,), 3.5, device="cuda")}  # fmt: skip
    x = torch.randn(batch, channels, height, width, generator=g, device="cuda")
    sigma = torch.full((batch,), 0.8 if kind == "flux" else 5.0, device="cuda")

    def step() -> Any:
        options = {"wrappers": comfy.patcher_extension.copy_nested_dicts(patcher.wrappers)}
        return patcher.model.apply_model(x, sigma, transformer_options=options, **conds)

    return step


def _first(step: Callable[[], Any]) -> float:
    import torch

    torch.cuda.synchronize()
    start = time.perf_counter()
    step()
    torch.cuda.synchronize()
    return time.perf_counter() - start


def _steady_ms(step: Callable[[], Any]) -> tuple[float, float]:
    """Median device time of a step (CUDA events) and the host's median time per call (no sync in
    between), in ms: a step whose host time reaches its device time is launch-bound."""
    import torch

    for _ in range(WARM_STEPS):
        step()
    pairs, host = [], []
    for _ in range(STEADY_STEPS):
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        t0 = time.perf_counter()
        start.record()
        step()
        end.record()
        host.append((time.perf_counter() - t0) * 1000)
        pairs.append((start, end))
    torch.cuda.synchronize()
    return statistics.median(s.elapsed_time(e) for s, e in pairs), statistics.median(host)


def _frames() -> int:
    from torch._dynamo.utils import counters

    return int(counters["frames"]["ok"])


def _speed_settings(dynamic: bool = False, mode: str = "speed", regions: bool = False) -> Any:
    from comfyx.compile.settings import CompileSettings

    return CompileSettings(mode=mode, dynamic=dynamic, compile_unet_regions=regions)


def _with_cudnn_benchmark(step: Callable[[], Any]) -> dict[str, float]:
    """The steady step again with cuDNN choosing its convolution algorithms by timing them (ComfyUI's
    --fast autotune), in the same process: the compiled graphs call cuDNN for the convolutions."""
    import torch

    torch.backends.cudnn.benchmark = True
    try:
        device_ms, host_ms = _steady_ms(step)
        return {"steady_ms_cudnn_benchmark": device_ms, "steady_host_ms_cudnn_benchmark": host_ms}
    finally:
        torch.backends.cudnn.benchmark = False


def _quantize_fp8(kind: str, patcher: Any) -> Any:
    """What ``comfyx serve --fast`` does at load: the transformer blocks' Linear layers in fp8, their
    activation scales calibrated on the first call; returns that first call's output (the reference
    for the compiled stage's error, as fp8 runs it)."""
    from comfyx.kernels import LayerOptions
    from comfyx.kernels.calibrate import add_calibration
    from comfyx.kernels.quantize import quantize_loaded_model

    quantize_loaded_model(patcher, "fp8", "blocks", LayerOptions())
    add_calibration(patcher)
    return _step_fn(kind, patcher, *RESOLUTIONS[0])()


AOT_CACHE_FIELDS = ("aot_cache_hits", "aot_cache_misses", "aot_cache_saves", "aot_cache_bypasses",
                    "aot_cache_bypass_reasons")  # fmt: skip


def _aot_cache(metrics: dict[str, Any]) -> dict[str, Any]:
    return {name: metrics[name] for name in AOT_CACHE_FIELDS}


def _compile_phases() -> dict[str, float]:
    """Seconds this process spent per torch compile phase (dynamo's own tracing is
    entire_frame_compile less backend_compile)."""
    from torch._dynamo.utils import calculate_time_spent

    return {phase: round(seconds, 3) for phase, seconds in calculate_time_spent().items()}


def _rel_err(out: Any, ref: Any) -> float:
    # recorded, not asserted: a mismatch must show in the report next to the timings
    return ((out.float() - ref.float()).norm() / ref.float().norm()).item()


def stage_eager(kind: str, emit: Callable[..., None]) -> None:
    patcher = _patcher(kind)
    step = _step_fn(kind, patcher, *RESOLUTIONS[0])
    first = _first(step)
    device_ms, host_ms = _steady_ms(step)
    emit(config="eager", first_step_s=first, steady_ms=device_ms, steady_host_ms=host_ms)


def stage_comfy(kind: str, emit: Callable[..., None]) -> None:
    """ComfyUI's TorchCompileModel node: set_torch_compile_wrapper(backend="inductor") on a clone."""
    from comfy_api.torch_helpers import set_torch_compile_wrapper
    from comfyx.compile.metrics import aot_cache_bypass_reasons, counter_delta, counter_snapshot

    patcher = _patcher(kind)
    ref = _step_fn(kind, patcher, *RESOLUTIONS[0])()
    clone = patcher.clone()
    set_torch_compile_wrapper(model=clone, backend="inductor")
    step = _step_fn(kind, clone, *RESOLUTIONS[0])
    before, reasons = counter_snapshot(), []
    with aot_cache_bypass_reasons(reasons):
        first = _first(step)
    aot_cache = _aot_cache({**counter_delta(before), "aot_cache_bypass_reasons": reasons})
    phases = _compile_phases()
    rel = _rel_err(step(), ref)
    emit(config="comfyui-TorchCompileModel", first_step_s=first, steady_ms=_steady_ms(step)[0], rel_err=rel,
         frames=_frames(), aot_cache=aot_cache, compile_phases_s=phases)  # fmt: skip


def stage_speed(kind: str, emit: Callable[..., None], warm: bool = False, resolutions: bool = True,
                dynamic: bool = False, candidate: str | None = None, fp8: bool = False,
                mode: str = "speed", regions: bool = False) -> None:  # fmt: skip
    """comfyx's compile of the model (``fp8``: after --fast's fp8 quantization, and the steady step timed
    again with cuDNN's benchmark mode), in ``mode`` (speed, or reduce-overhead: the same graphs replayed
    as CUDA graphs), whole or (``regions``) as a UNet's spatial transformers and ResNet blocks."""
    from comfyx.compile import settings as settings_module
    from comfyx.compile.apply import apply_compile, compiled_model_of
    from comfyx.paths import CompileCaches, export_compile_caches

    # the stage's cache directory (the driver's COMFYX_CACHE_DIR), told to torch as comfyx serve does;
    # torch reads the variables on every cache access
    caches = CompileCaches.resolve(Path(os.environ["COMFYX_CACHE_DIR"]), os.environ)
    export_compile_caches(caches, os.environ)
    if candidate is not None:  # the sweep: the speed preset with other inductor options
        settings_module.SPEED_OPTIONS.clear()
        settings_module.SPEED_OPTIONS.update(CANDIDATES[candidate])
    patcher = _patcher(kind)
    ref = _quantize_fp8(kind, patcher) if fp8 else _step_fn(kind, patcher, *RESOLUTIONS[0])()
    clone = apply_compile(patcher, _speed_settings(dynamic, mode, regions), caches)
    compiled = compiled_model_of(clone)
    step = _step_fn(kind, clone, *RESOLUTIONS[0])
    first = _first(step)
    phases = _compile_phases()
    rel = _rel_err(step(), ref)
    steady, host_ms = _steady_ms(step)
    record = {
        "config": f"{'fp8-' if fp8 else ''}{'regions-' if regions else ''}{mode}{'-dynamic' if dynamic else ''}"
                  f"{':' + candidate if candidate else ''}",
        "caches": "warm" if warm else "cold",
        "plan": compiled.plan.compile_kwargs(),
        "compiled_modules": len(compiled.modules),
        "first_step_s": first,
        "steady_ms": steady,
        "steady_host_ms": host_ms,
        **(_with_cudnn_benchmark(step) if fp8 else {}),
        "rel_err": rel,
        "aot_cache": _aot_cache(compiled.metrics.summary()),
        "compile_phases_s": phases,
    }
    emit(**record, metrics=compiled.metrics.summary())  # kept even if the resolution sweep runs out of time
    if resolutions:
        per_res = []
        for height, width in RESOLUTIONS[1:]:
            before = _frames()
            res_step = _step_fn(kind, clone, height, width)
            seconds = _first(res_step)
            per_res.append({"latent": [height, width], "first_step_s": seconds, "frames_compiled": _frames() - before,
                            "steady_ms": _steady_ms(res_step)[0]})  # fmt: skip
        before = _frames()
        _first(step)  # back to the first resolution: its graph must still be there
        emit(config=record["config"], caches=record["caches"], resolutions=per_res,
             frames_on_return=_frames() - before, metrics=compiled.metrics.summary())  # fmt: skip


STAGES: dict[str, tuple[Callable[[Callable[..., None]], None], int]] = {
    "sdxl-eager": (lambda emit: stage_eager("sdxl", emit), 120),
    "sdxl-comfy": (lambda emit: stage_comfy("sdxl", emit), 200),
    **{
        f"sdxl-cand:{name}": ((lambda emit, n=name: stage_speed("sdxl", emit, resolutions=False, candidate=n)), 200)
        for name in CANDIDATES
    },
    "sdxl-speed": (lambda emit: stage_speed("sdxl", emit), 380),
    "sdxl-speed-warm": (lambda emit: stage_speed("sdxl", emit, warm=True, resolutions=False), 150),
    # cold and warm first step alone, without the resolution sweep (whose recompile is long)
    "sdxl-speed1": (lambda emit: stage_speed("sdxl", emit, resolutions=False), 200),
    "sdxl-speed1-warm": (lambda emit: stage_speed("sdxl", emit, warm=True, resolutions=False), 150),
    # --fast's fp8 layers, compiled in speed mode, and replayed as CUDA graphs; whole or in regions; each
    # "-warm" stage restarts on its cold stage's caches
    **{
        f"sdxl-fp8-{name}{warm}": ((lambda emit, m=mode, r=regions, w=bool(warm): stage_speed(
            "sdxl", emit, warm=w, resolutions=False, fp8=True, mode=m, regions=r)), 150 if warm else 220)
        for name, mode, regions in (("speed1", "speed", False), ("graphs1", "reduce-overhead", False),
                                    ("regions1", "speed", True), ("regions-graphs1", "reduce-overhead", True))
        for warm in ("", "-warm")
    },
    "flux-eager": (lambda emit: stage_eager("flux", emit), 120),
    "flux-comfy": (lambda emit: stage_comfy("flux", emit), 200),
    "flux-speed": (lambda emit: stage_speed("flux", emit), 300),
    "flux-speed-warm": (lambda emit: stage_speed("flux", emit, warm=True, resolutions=False), 150),
}


def run_stage(name: str, comfyui: Path, result: Path) -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    _setup(comfyui)
    import torch

    def emit(**record: Any) -> None:
        record = {"stage": name, "model": name.split("-")[0], **record}
        with result.open("a") as f:
            f.write(json.dumps(record) + "\n")
        print(json.dumps(record), flush=True)

    with torch.inference_mode():
        STAGES[name][0](emit)


# ---------------------------------------------------------------- the driver


def _cache_for(name: str, work: Path) -> Path:
    # a warm stage reuses its cold stage's cache directory: the restart case
    return work / "cache" / name.removesuffix("-warm")


def drive(stages: list[str], comfyui: Path, out: Path, work: Path, budget_s: float) -> dict:
    result = work / "records.jsonl"
    result.unlink(missing_ok=True)
    started = time.monotonic()
    skipped = []
    for name in stages:
        left = budget_s - (time.monotonic() - started)
        limit = min(STAGES[name][1], left - 5)
        if limit < 30:
            skipped.append(name)
            continue
        env = dict(os.environ, COMFYX_CACHE_DIR=str(_cache_for(name, work)), PYTHONUNBUFFERED="1")
        env.pop("TORCHINDUCTOR_CACHE_DIR", None)
        env.pop("TRITON_CACHE_DIR", None)
        command = [sys.executable, __file__, "--stage", name, "--comfyui", str(comfyui), "--result", str(result)]
        t0 = time.monotonic()
        try:
            proc = subprocess.run(command, check=False, env=env, timeout=limit, capture_output=True, text=True)
            status = "ok" if proc.returncode == 0 else f"exit {proc.returncode}"
            log = proc.stdout + proc.stderr
        except subprocess.TimeoutExpired as expired:
            status = f"timed out after {limit:.0f} s"
            log = (expired.stdout or b"").decode(errors="replace") + (expired.stderr or b"").decode(errors="replace")
        (work / f"{name.replace(':', '_')}.log").write_text(log)
        print(f"== {name}: {status} in {time.monotonic() - t0:.0f} s", flush=True)
        if status != "ok":
            print(log[-3000:], flush=True)
            with result.open("a") as f:
                f.write(json.dumps({"stage": name, "error": status}) + "\n")
    records = [json.loads(line) for line in result.read_text().splitlines()] if result.exists() else []
    return {"environment": _environment(), "records": records, "skipped_for_time": skipped}


def _environment() -> dict:
    import torch

    return {
        "torch": torch.__version__,
        "triton": _version("triton"),
        "device": torch.cuda.get_device_name() if torch.cuda.is_available() else "cpu",
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
    }


def _version(package: str) -> str | None:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(package)
    except PackageNotFoundError:
        return None


def plot(report: dict, path: Path) -> bool:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return False
    rows = [r for r in report["records"] if "first_step_s" in r]
    fig, (left, right) = plt.subplots(1, 2, figsize=(13, 4.5))
    labels = [
        f"{r['model']}\n{r['config']}"
        + (f" ({r['caches']})" if "caches" in r else "")
        + (f", run {r['run']}" if "run" in r else "")  # merged reports keep each run's own bars
        for r in rows
    ]
    left.barh(labels, [r.get("steady_ms", float("nan")) for r in rows], color="tab:blue")
    left.set_xlabel("steady-state step (ms, median)")
    left.invert_yaxis()
    right.barh(labels, [r["first_step_s"] for r in rows], color="tab:orange")
    right.set_xscale("log")
    right.set_xlabel("first step (s, log): compile included when cold")
    right.invert_yaxis()
    fig.suptitle(f"torch.compile on ComfyUI models, {report['environment']['device']}, "
                 f"torch {report['environment']['torch']}")  # fmt: skip
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    return True


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--comfyui", type=Path, default=os.environ.get("COMFYUI_PATH"), required=False)
    parser.add_argument("--stages", default="sdxl-eager,sdxl-comfy,sdxl-speed,sdxl-speed-warm,"
                        "flux-eager,flux-comfy,flux-speed,flux-speed-warm")  # fmt: skip
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results")
    parser.add_argument("--work", type=Path, default=Path("/tmp/comfyx-bench-compile"))
    parser.add_argument("--budget-s", type=float, default=570, help="stop starting stages after this long")
    parser.add_argument("--name", default="compile", help="output file stem")
    parser.add_argument("--stage", help=argparse.SUPPRESS)
    parser.add_argument("--result", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.comfyui is None:
        parser.error("--comfyui (or COMFYUI_PATH) is required")
    if args.stage:
        run_stage(args.stage, args.comfyui, args.result)
        return 0
    stages = args.stages.split(",")
    unknown = [s for s in stages if s not in STAGES]
    if unknown:
        parser.error(f"unknown stages {unknown}; known: {', '.join(STAGES)}")
    args.work.mkdir(parents=True, exist_ok=True)
    args.out.mkdir(parents=True, exist_ok=True)
    report = drive(stages, args.comfyui, args.out, args.work, args.budget_s)
    (args.out / f"{args.name}.json").write_text(json.dumps(report, indent=2))
    plot(report, args.out / f"{args.name}.png")
    for r in report["records"]:
        print(json.dumps({k: v for k, v in r.items() if k not in ("metrics", "plan")}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
