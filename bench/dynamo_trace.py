"""How long Dynamo takes to trace a diffusion model with comfyx's fp8 layers, against ComfyUI's bf16 ones.

A warm restart of ``comfyx serve --fast`` loads every compiled graph from torch's caches but
still traces the model's Python again (H100: Flux's two block types 2.3 s of its 5 s first step,
bench/results/e2e.md), and every quantized Linear layer's forward is traced once per layer:
SDXL's UNet, compiled whole, has 700 of them. This times that trace for the models comfyx
compiles, at their real widths, with random weights:

- ``bf16``: ComfyUI's own layers (comfyx's op set, nothing quantized);
- ``fp8-calibrated``: the Linear layers ``--quantize fp8`` picks (the transformer blocks') in
  fp8 with calibrated activation scales (``--fast``'s default, calibrated on one forward);
- ``fp8-dynamic``: the same with dynamic activation scales.

Each (model, variant) runs in a process of its own (a fresh Dynamo, as after a restart): the
modules comfyx compiles (Flux: each block; SDXL: the whole UNet) get ``torch.compile`` with the
``eager`` backend, so what is timed is Dynamo alone (tracing, guards), which the warm restart
pays in full; trace seconds: Dynamo's own account (``_compile.compile_inner``), the median of
``--runs`` processes; and, since those drift with the machine's load, the Python function calls
the trace made (one more process, under cProfile): a count that changes only with the code.
On a machine without CUDA the fp8 layers would take their dequantized fallback, a different path: there the bench
lets comfyx_kernels' fp8 GEMM run on the CPU (torch._scaled_mm has a CPU kernel), so that the
path traced is the one a CUDA GPU takes; the JSON says which.

    python bench/dynamo_trace.py --comfyui "$COMFYUI_PATH" --out bench/results/dynamo-trace.json
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
from pathlib import Path

MODELS = ("flux", "sdxl")
VARIANTS = ("bf16", "fp8-calibrated", "fp8-dynamic")


def _load_comfyui(comfyui: Path) -> None:
    sys.path.insert(0, str(comfyui))
    import comfy.cli_args

    comfy.cli_args.args.use_pytorch_cross_attention = True  # what ComfyUI uses on CUDA GPUs
    if not _cuda():
        comfy.cli_args.args.cpu = True


def _cuda() -> bool:
    import torch

    return torch.cuda.is_available()


def _build(model: str, device: str):
    """The diffusion model at its real widths (Flux: one block of each kind), comfyx's op set, random bf16
    weights, as a BaseModel-like holder's ``diffusion_model`` (what comfyx.compile.targets takes); its inputs."""
    import comfy.ops
    import torch
    from comfyx.bench.models import FLUX, SDXL_UNET
    from comfyx.kernels import LayerOptions
    from comfyx.kernels.ops import operations_for

    ops = operations_for(comfy.ops.disable_weight_init, LayerOptions())
    with torch.device("meta"):
        if model == "flux":
            import comfy.ldm.flux.math
            import comfyx.kernels.rope
            from comfy.ldm.flux.model import Flux

            comfyx.kernels.rope.install_into(comfy.ldm.flux.math)
            config = {k: v for k, v in FLUX.items() if k != "image_model"}
            net = Flux(**{**config, "depth": 1, "depth_single_blocks": 1}, dtype=torch.bfloat16, operations=ops)
        else:
            from comfy.ldm.modules.diffusionmodules.openaimodel import UNetModel

            net = UNetModel(**SDXL_UNET, dtype=torch.bfloat16, operations=ops)
    net = net.to_empty(device=device)
    generator = torch.Generator(device).manual_seed(0)
    with torch.no_grad():
        for param in net.parameters():
            param.normal_(0.0, 0.02, generator=generator)
    kw = {"device": device, "dtype": torch.bfloat16}
    if model == "flux":  # 4x4 latent (4 image tokens), 4 text tokens: the trace does not depend on them
        inputs = (torch.randn(1, 16, 4, 4, **kw), torch.tensor([0.5], device=device),
                  torch.randn(1, 4, 4096, **kw), torch.randn(1, 768, **kw), torch.tensor([3.5], device=device))
    else:  # 8x8 latent, 77 text tokens
        inputs = (torch.randn(1, 4, 8, 8, **kw), torch.tensor([500.0], device=device),
                  torch.randn(1, 77, 2048, **kw), torch.randn(1, 2816, **kw))
    holder = torch.nn.Module()
    holder.diffusion_model = net
    return holder, inputs


def _quantize(net, variant: str, inputs: tuple) -> int:
    """Quantize as --quantize fp8 does (plan_for: the transformer blocks' Linear layers); calibrate on one
    forward for fp8-calibrated. Returns the number of fp8 layers."""
    from comfyx.kernels.calibrate import calibrate, pending_layers
    from comfyx.kernels.quantize import plan_for

    plan = plan_for(net, "blocks", "fp8")
    for _, layer in plan.chosen:
        layer.quantize_weight_("fp8")
    if variant == "fp8-calibrated":
        calibrate(pending_layers(net), lambda: net(*inputs))
    return len(plan.chosen)


def measure_one(comfyui: Path, model: str, variant: str, count: bool) -> dict:
    """One (model, variant) in this process: seconds Dynamo took to trace it; with ``count``, the Python
    function calls made while it ran instead (under cProfile, which slows it: a measure that does not
    drift with the machine's load)."""
    _load_comfyui(comfyui)
    import comfy.utils
    import torch
    from comfyx.compile.targets import compile_keys

    forced = not _cuda()
    if forced:  # trace the CUDA path (see the module's docstring)
        import comfyx_kernels.quantized_tensor

        comfyx_kernels.quantized_tensor._gemm_problem = lambda device, k, n: None
    torch.set_grad_enabled(False)
    device = "cuda" if _cuda() else "cpu"
    holder, inputs = _build(model, device)
    layers = _quantize(holder.diffusion_model, variant, inputs) if variant != "bf16" else 0
    for key in compile_keys(holder, transformer_blocks_only=True):  # what comfyx's compile compiles
        comfy.utils.set_attr(holder, key, torch.compile(comfy.utils.get_attr(holder, key), backend="eager"))
    run = holder.diffusion_model
    if count:
        import cProfile
        import pstats

        profile = cProfile.Profile()
        profile.runcall(run, *inputs)
        return {"python_calls": pstats.Stats(profile).total_calls}
    run(*inputs)
    metrics = torch._dynamo.utils.compilation_time_metrics
    return {"model": model, "variant": variant, "fp8_layers": layers,
            "trace_s": round(sum(metrics["_compile.compile_inner"]), 3),
            "bytecode_tracing_s": round(sum(metrics.get("bytecode_tracing", [])), 3),
            "build_guards_s": round(sum(metrics.get("build_guards", [])), 3),
            "dynamo_frames": torch._dynamo.utils.counters["stats"]["unique_graphs"], "device": device,
            "cuda_path_forced_on_cpu": forced}


def chart(results: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    models = list(dict.fromkeys(r["model"] for r in results))
    codes = list(dict.fromkeys(r["code"] for r in results))
    fig, axes = plt.subplots(1, len(models), figsize=(5.5 * len(models), 3.8), squeeze=False)
    for ax, model in zip(axes[0], models, strict=True):
        width = 0.8 / len(codes)
        for c, code in enumerate(codes):
            rows = [r for r in results if r["model"] == model and r["code"] == code]
            xs = [VARIANTS.index(r["variant"]) + (c - (len(codes) - 1) / 2) * width for r in rows]
            ax.bar(xs, [r["trace_s"] for r in rows], width, label=code)
            for x, r in zip(xs, rows, strict=True):
                ax.annotate(f"{r['trace_s']:.1f} s\n{r['python_calls'] / 1e6:.2f}M", (x, r["trace_s"]),
                            ha="center", va="bottom", fontsize=7)
        ax.set_xticks(range(len(VARIANTS)), VARIANTS)
        ax.margins(y=0.15)
        ax.set_title(f"{model}: Dynamo trace (s; Python calls)")
        ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--comfyui", type=Path, default=os.environ.get("COMFYUI_PATH"),
                        help="ComfyUI v0.3.64 checkout (default: $COMFYUI_PATH)")
    parser.add_argument("--models", default=",".join(MODELS), help="comma-separated: flux, sdxl")
    parser.add_argument("--runs", type=int, default=3, help="processes per (model, variant); the median is kept")
    parser.add_argument("--baseline", type=Path, help="another comfyx checkout (e.g. a git worktree of the commit "
                        "before a change) measured alongside, in alternate processes")
    parser.add_argument("--out", type=Path, help="JSON file (a PNG beside it)")
    parser.add_argument("--one", nargs=2, metavar=("MODEL", "VARIANT"), help=argparse.SUPPRESS)
    parser.add_argument("--count", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.comfyui is None:
        parser.error("--comfyui or $COMFYUI_PATH is needed")
    if args.one:
        print(json.dumps(measure_one(args.comfyui, *args.one, args.count)), flush=True)
        return
    checkouts = {"this": Path(__file__).resolve().parent.parent}
    if args.baseline:
        checkouts = {"baseline": args.baseline.resolve(), **checkouts}
    results = []
    for model in args.models.split(","):
        for variant in VARIANTS:
            runs: dict[str, list[dict]] = {code: [] for code in checkouts}
            for _ in range(args.runs):  # the checkouts alternate, so the machine's drift weighs on both
                for code, checkout in checkouts.items():
                    runs[code].append(_one(args.comfyui, model, variant, checkout))
            for code, checkout in checkouts.items():
                seconds = [r["trace_s"] for r in runs[code]]
                entry = {**runs[code][0], "code": code, "trace_s": round(statistics.median(seconds), 3),
                         "trace_s_runs": seconds,
                         **_one(args.comfyui, model, variant, checkout, "--count")}
                print(json.dumps(entry), flush=True)
                results.append(entry)
    if args.out:
        import torch

        args.out.parent.mkdir(parents=True, exist_ok=True)
        commits = {code: _commit(checkout) for code, checkout in checkouts.items()}
        args.out.write_text(json.dumps({"torch": torch.__version__, "commits": commits, "results": results},
                                       indent=1) + "\n")
        chart(results, args.out.with_suffix(".png"))


def _one(comfyui: Path, model: str, variant: str, checkout: Path, *extra: str) -> dict:
    """measure_one in a process of its own (a fresh Dynamo, as after a restart) with ``checkout``'s comfyx and
    comfyx_kernels sources and its own copy of this script (which compiles what that comfyx compiles)."""
    pythonpath = os.pathsep.join(str(checkout / part) for part in ("python/comfyx", "python/comfyx-kernels/src"))
    script = checkout / "bench" / Path(__file__).name
    out = subprocess.run([sys.executable, str(script), "--comfyui", str(comfyui), "--one", model, variant, *extra],
                         check=True, capture_output=True, text=True, env={**os.environ, "PYTHONPATH": pythonpath})
    return json.loads(out.stdout.strip().splitlines()[-1])


def _commit(checkout: Path) -> str | None:
    """The commit ``checkout`` has out (its working tree may differ from it), or None outside git."""
    out = subprocess.run(["git", "-C", str(checkout), "rev-parse", "--short", "HEAD"], capture_output=True,
                         text=True, check=False)
    return out.stdout.strip() or None


if __name__ == "__main__":
    main()
