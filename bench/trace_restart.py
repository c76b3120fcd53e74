"""A restart's first call of comfyx's compiled modules with and without saved traces, on the CPU.

``comfyx.compile.traces`` saves Dynamo's trace of each compiled module so that a restart loads it instead of
tracing again. This times the three first calls a restart can make, each in a process of its own, on the
models of ``dynamo_trace.py`` (real widths, random weights, the fp8 layers ``--fast`` quantizes, calibrated;
SDXL's UNet compiled whole, Flux as one double and one single block):

- ``cold``: no saved trace yet: Dynamo traces, the backend compiles, the trace is saved;
- ``restart, saved trace``: the same cache directory: the trace is loaded and checked;
- ``restart, traced again``: torch.compile as before saved traces (Dynamo traces again).

The backend is AOTAutograd's eager one (torch's ``aot_eager``: AOTAutograd's graph capture without inductor's
code generation), so what differs between the rows is Dynamo's trace, not inductor's compile or its caches,
which a GPU restart hits either way. Each row has the first call's seconds (a small latent: SDXL 8x8, Flux
4x4), the median of five later calls, their difference ``start_up_s``, and ``trace_or_load_s`` (the
chart): the seconds the first call spent in saved traces' loading or tracing, or, traced again, in
Dynamo's compile (its own account), which the model's run (seconds on the CPU, and noisy) does not blur.

    python bench/trace_restart.py --comfyui "$COMFYUI_PATH" --out bench/results
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import dynamo_trace

MODELS = ("sdxl", "flux")
CASES = ("cold", "restart, saved trace", "restart, traced again")
BACKEND = {"backend": "aot_eager", "fullgraph": False, "dynamic": None}


def measure_one(comfyui: Path, model: str, case: str, traces_dir: Path) -> dict:
    dynamo_trace._load_comfyui(comfyui)
    import comfy.utils
    import comfyx_kernels.quantized_tensor
    import torch
    from comfyx.compile.metrics import CompileMetrics
    from comfyx.compile.targets import compile_keys
    from comfyx.compile.traces import SavedTraces, TracedModule

    comfyx_kernels.quantized_tensor._gemm_problem = lambda device, k, n: None  # the CUDA path (dynamo_trace.py)
    torch.set_grad_enabled(False)
    holder, inputs = dynamo_trace._build(model, "cpu")
    layers = dynamo_trace._quantize(holder.diffusion_model, "fp8-calibrated", inputs)
    metrics, by_class = CompileMetrics(model), {}
    keys = compile_keys(holder, transformer_blocks_only=True)
    for key in keys:
        module = comfy.utils.get_attr(holder, key)
        compiled = torch.compile(module, **BACKEND)
        if case != "restart, traced again":
            traces = by_class.setdefault(type(module), SavedTraces(type(module), BACKEND, traces_dir, "bench", metrics))
            compiled = TracedModule(module, compiled, traces)
        comfy.utils.set_attr(holder, key, compiled)
    spent = _time_traces(SavedTraces)
    run = holder.diffusion_model
    started = time.perf_counter()
    run(*inputs)
    first = time.perf_counter() - started
    later = []
    for _ in range(5):
        started = time.perf_counter()
        run(*inputs)
        later.append(time.perf_counter() - started)
    steady = statistics.median(later)
    dynamo_s = sum(torch._dynamo.utils.compilation_time_metrics.get("_compile.compile_inner", []))
    return {"model": model, "case": case, "fp8_layers": layers, "first_call_s": round(first, 3),
            "later_call_s": round(steady, 4), "start_up_s": round(first - steady, 3),
            # the first call's tracing or loading alone: saved traces' own seconds, or Dynamo's compile
            "trace_or_load_s": round(spent["s"] if case != "restart, traced again" else dynamo_s, 3),
            "traces_saved": metrics.traces_saved, "traces_loaded": metrics.traces_loaded, "compiled_modules": len(keys)}


def _time_traces(saved_traces: type) -> dict[str, float]:
    """Add the seconds SavedTraces spends loading and tracing (its _load and _trace) to the returned dict."""
    spent = {"s": 0.0}
    for name in ("_load", "_trace"):
        method = getattr(saved_traces, name)

        def timed(self, *args, _method=method, **kwargs):
            started = time.perf_counter()
            try:
                return _method(self, *args, **kwargs)
            finally:
                spent["s"] += time.perf_counter() - started

        setattr(saved_traces, name, timed)
    return spent


def chart(results: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    models = list(dict.fromkeys(r["model"] for r in results))
    fig, axes = plt.subplots(1, len(models), figsize=(6 * len(models), 3.8), squeeze=False)
    for ax, model in zip(axes[0], models, strict=True):
        rows = [r for r in results if r["model"] == model]
        ax.barh([r["case"] for r in rows], [r["trace_or_load_s"] for r in rows],
                color=["tab:gray", "tab:green", "tab:orange"][: len(rows)])
        for i, r in enumerate(rows):
            ax.text(r["trace_or_load_s"], i, f" {r['trace_or_load_s']:.2f} s", va="center")
        ax.invert_yaxis()
        ax.set_xlabel("first call: tracing (and compiling) or loading, s")
        ax.set_title(f"{model} ({rows[0]['compiled_modules']} compiled module(s), {rows[0]['fp8_layers']} fp8 layers)")
    fig.suptitle("A restart's first call with saved Dynamo traces (CPU, AOTAutograd's eager backend)")
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--comfyui", type=Path, default=os.environ.get("COMFYUI_PATH"))
    parser.add_argument("--out", type=Path, default=Path("bench/results"))
    parser.add_argument("--models", default=",".join(MODELS))
    parser.add_argument("--one", nargs=3, metavar=("MODEL", "CASE", "DIR"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        print("RESULT " + json.dumps(measure_one(args.comfyui, args.one[0], args.one[1], Path(args.one[2]))))
        return
    results = []
    for model in args.models.split(","):
        with tempfile.TemporaryDirectory() as scratch:
            env = {**os.environ, "TORCHINDUCTOR_CACHE_DIR": str(Path(scratch) / "inductor")}
            for case in CASES:
                done = subprocess.run([sys.executable, __file__, "--comfyui", str(args.comfyui), "--one", model, case,
                                       str(Path(scratch) / "traces")], check=False, env=env, capture_output=True,
                                      text=True)
                lines = [line for line in done.stdout.splitlines() if line.startswith("RESULT ")]
                if not lines:
                    raise SystemExit(f"{model} / {case} failed:\n{done.stderr[-3000:]}")
                results.append(json.loads(lines[-1].removeprefix("RESULT ")))
                print(json.dumps(results[-1]), flush=True)
    import torch

    report = {"torch": torch.__version__, "machine": f"{os.cpu_count()} CPUs", "backend": BACKEND["backend"],
              "date": time.strftime("%Y-%m-%d"), "results": results}
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "trace-restart.json").write_text(json.dumps(report, indent=2) + "\n")
    chart(results, args.out / "trace-restart.png")


if __name__ == "__main__":
    main()
