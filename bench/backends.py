"""Backends on a CPU machine: XLA compilations with and without shape padding; IPEX vs plain torch.

Every figure comes from ``comfyx serve`` on real ComfyUI with the tiny SD1.5-architecture
checkpoint (``comfyx.testing.checkpoint``), driven over HTTP + websocket:

- ``xla`` (torch 2.9.0 + torch_xla 2.9.0, PJRT_DEVICE=CPU): the same 20 txt2img requests at
  mixed sizes inside two 64-px buckets, once with padding (default flags) and once with
  ``--no-tpu-shape-padding --no-tpu-warmup``. Per request: XLA compilations (torch_xla's
  ``CompileTime`` count, read through the TPU Compilation Cache node), wall time, and the
  sampler's time per step on runs that compiled nothing.
- ``ipex`` (torch 2.8.0 + IPEX 2.8.0): the UNet of the same checkpoint as ComfyUI loads it,
  one cfg step (batch 2) at 256² and 128², plain torch vs what ``--backend ipex`` does to it
  (``comfyx.backends.intel.optimize``) vs ``--backend ipex --ipex-int8``, alternating in one
  process; minimum, median, the median of each round's ratio to plain torch, and each
  output's difference from plain torch's.
  (Whole requests through two servers were too noisy on a shared 2-core machine to compare.)
  bf16 is not compared: on a CPU ComfyUI runs bf16 weights through its manual-cast layers
  (fp32 compute), which IPEX cannot prepack, so both would run the same code.
- ``report``: merges ``backends.xla.json`` and ``backends.ipex.json`` into ``backends.json``
  and draws ``backends.png`` (needs matplotlib).

    PJRT_DEVICE=CPU /work/venv-xla/bin/python bench/backends.py xla --comfyui $COMFYUI_PATH
    /work/venv-ipex/bin/python bench/backends.py ipex --comfyui $COMFYUI_PATH
    python bench/backends.py report
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results"
BUCKETS = ((64, 64), (128, 64))  # width x height, 64-px buckets as in the tests
REQUESTS = 20
XLA_STEPS = 4


def mixed_sizes(count: int, seed: int = 11) -> list[tuple[int, int]]:
    rng = random.Random(seed)
    return [(rng.randrange(w - 48, w + 1, 8), rng.randrange(h - 48, h + 1, 8))
            for w, h in (BUCKETS[i % len(BUCKETS)] for i in range(count))]


def environment() -> dict:
    import torch

    env = {"python": platform.python_version(), "torch": torch.__version__, "cpu_count": os.cpu_count(),
           "cpu": _cpu_model()}
    for dist in ("torch_xla", "intel-extension-for-pytorch"):
        try:
            from importlib.metadata import version

            env[dist] = version(dist)
        except Exception:  # noqa: BLE001 - a package that is not installed
            env[dist] = None
    return env


def _cpu_model() -> str:
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return platform.processor()


def checkpoint_dir(comfyui: Path, work: Path) -> Path:
    from comfyx.testing.workflows import TINY_CHECKPOINT

    models = work / "models"
    target = models / "checkpoints" / TINY_CHECKPOINT
    if not target.exists():
        target.parent.mkdir(parents=True, exist_ok=True)
        subprocess.run([sys.executable, "-m", "comfyx.testing.checkpoint", "--comfyui", str(comfyui), str(target)],
                       check=True, capture_output=True)
    config = work / "extra_model_paths.yaml"
    config.write_text(f"bench:\n  base_path: {models}\n  checkpoints: checkpoints\n")
    return config


def start(comfyui: Path, work: Path, name: str, comfyx_args: list[str], comfyui_args: list[str] = (),
          env: dict | None = None):
    from comfyx.testing.server import ComfyxServer

    config = checkpoint_dir(comfyui, work)
    # --cache-lru keeps the loaded checkpoint while the stats prompts run in between
    server = ComfyxServer(comfyui, ["--cpu", "--extra-model-paths-config", str(config), "--cache-lru", "16",
                                    "--output-directory", str(work / f"out-{name}"), *comfyui_args],
                          comfyx_args=comfyx_args, log_path=work / f"{name}.log", env=env)
    server.start(timeout=600)
    return server


def timed(server, prompt: dict) -> float:
    began = time.perf_counter()
    run = server.run_prompt(prompt, timeout=1800)
    if run.first("execution_error") is not None:
        raise RuntimeError(f"prompt failed:\n{server.log_tail()}")
    return time.perf_counter() - began


def tpu_stats(server) -> dict:
    run = server.run_prompt({"1": {"class_type": "ComfyxTPUCompilationCache", "inputs": {"action": "stats"}}})
    return json.loads(run.history["outputs"]["1"]["text"][0])


def bench_xla(comfyui: Path, work: Path) -> dict:
    from comfyx.testing.workflows import txt2img

    sizes = mixed_sizes(REQUESTS)
    modes = {"padded": [], "unpadded": ["--no-tpu-shape-padding", "--no-tpu-warmup"]}
    results = {}
    for mode, flags in modes.items():
        server = start(comfyui, work, f"xla-{mode}", ["--backend", "tpu", "--no-tpu-compilation-cache", *flags],
                       env={"PJRT_DEVICE": "CPU", "COMFYX_CACHE_DIR": str(work / "cache")})
        try:
            requests = []
            for index, (width, height) in enumerate(sizes):
                before = tpu_stats(server)
                seconds = timed(server, txt2img(width=width, height=height, steps=XLA_STEPS, seed=index,
                                                prefix=mode))
                after = tpu_stats(server)
                requests.append({"width": width, "height": height, "seconds": round(seconds, 3),
                                 "compiles": after["compiles"] - before["compiles"],
                                 "compile_seconds": round(after["compile_seconds"] - before["compile_seconds"], 3)})
                print(f"xla {mode} {width}x{height}: {requests[-1]}", flush=True)
            final = tpu_stats(server)
        finally:
            server.stop()
        steady = [r["seconds"] for r in requests if r["compiles"] == 0]
        step_times = [s["last_step_seconds"] for s in final["signatures"] if s["last_step_seconds"]]
        results[mode] = {
            "flags": flags,
            "requests": requests,
            "compiles_total": sum(r["compiles"] for r in requests),
            "requests_that_compiled": sum(1 for r in requests if r["compiles"]),
            "compile_seconds_total": round(sum(r["compile_seconds"] for r in requests), 1),
            "wall_seconds_total": round(sum(r["seconds"] for r in requests), 1),
            "steady_request_seconds_median": round(statistics.median(steady), 3) if steady else None,
            "sampler_step_seconds_median": round(statistics.median(step_times), 4) if step_times else None,
            "signatures": len(final["signatures"]),
        }
    return {"environment": environment(), "sizes": sizes, "steps": XLA_STEPS, "results": results}


def bench_ipex(comfyui: Path, work: Path, sizes: list[int], reps: int) -> dict:
    """The tiny UNet's cfg step (batch 2) as ComfyUI loads it: plain torch, ``--backend ipex``, ``--ipex-int8``.

    The IPEX models are what ``comfyx.backends.intel.optimize`` makes of copies of the plain
    one (int8: Linear layers quantized, Conv2d prepacked). In one process, calls alternate
    between the models and the minimum is reported with the median: on a shared machine,
    load from elsewhere only ever adds time. Output differences are the UNet's noise
    prediction against plain torch's, for the same input.
    """
    import copy

    from comfyx.testing.workflows import TINY_CHECKPOINT

    checkpoint_dir(comfyui, work)
    sys.path.insert(0, str(comfyui))
    import comfy.cli_args

    comfy.cli_args.args.cpu = True
    import comfy.sd
    import torch
    from comfyx.backends import intel, intel_int8

    patcher = comfy.sd.load_checkpoint_guess_config(str(work / "models" / "checkpoints" / TINY_CHECKPOINT),
                                                    output_vae=False, output_clip=False)[0]
    plain = patcher.model.eval()
    models = {"torch-fp32": plain,
              "ipex-fp32": intel.optimize(copy.deepcopy(plain), torch),
              "ipex-int8": intel.optimize(copy.deepcopy(plain), torch, int8=True)}
    int8_layers = sum(1 for m in models["ipex-int8"].modules() if intel_int8.is_quantized(m))
    if not int8_layers:
        raise RuntimeError("int8 was not applied on this machine (the log says why); nothing to compare")
    data = {"environment": environment(), "batch": 2, "reps": reps, "int8_layers": int8_layers,
            "prepacked_layers": {name: sum(1 for m in model.modules() if intel.is_prepacked(m))
                                 for name, model in models.items()},
            "sizes": {}}
    for size in sizes:
        data["sizes"][str(size)] = _step_times(models, size, reps, torch)
    return data


def _step_times(models: dict, size: int, reps: int, torch) -> dict:
    generator = torch.Generator().manual_seed(0)
    x = torch.randn(2, 4, size // 8, size // 8, generator=generator)
    sigma = torch.full((2,), 3.0)
    context = torch.randn(2, 77, 768, generator=generator)
    times: dict[str, list[float]] = {name: [] for name in models}
    outputs = {}
    with torch.no_grad():
        for name, model in models.items():  # first calls: allocation, oneDNN primitive creation
            outputs[name] = model.apply_model(x, sigma, c_crossattn=context)
        for _ in range(reps):
            for name, model in models.items():
                began = time.perf_counter()
                model.apply_model(x, sigma, c_crossattn=context)
                times[name].append(time.perf_counter() - began)
    results = {name: {"step_seconds_min": round(min(t), 4), "step_seconds_median": round(statistics.median(t), 4),
                      "samples": [round(v, 4) for v in t]} for name, t in times.items()}
    reference = outputs["torch-fp32"]
    for name, result in results.items():
        error = outputs[name] - reference
        result["max_abs_diff"] = float(error.abs().max())
        result["mean_abs_diff"] = float(error.abs().mean())
        result["relative_rms_diff"] = float(error.pow(2).mean().sqrt() / reference.pow(2).mean().sqrt())
        result["speedup_min"] = round(results["torch-fp32"]["step_seconds_min"] / result["step_seconds_min"], 3)
        result["speedup_median"] = round(results["torch-fp32"]["step_seconds_median"]
                                         / result["step_seconds_median"], 3)
        # calls of one round ran back to back, under about the same outside load
        result["speedup_paired_median"] = round(statistics.median(
            plain / own for plain, own in zip(times["torch-fp32"], times[name], strict=True)), 3)
        print(f"ipex {size}² {name}: min {result['step_seconds_min'] * 1000:.0f} ms, median "
              f"{result['step_seconds_median'] * 1000:.0f} ms per cfg step, max |diff| {result['max_abs_diff']:.2e}",
              flush=True)
    return results


def report(out: Path) -> None:
    xla = json.loads((out / "backends.xla.json").read_text())
    ipex = json.loads((out / "backends.ipex.json").read_text())
    (out / "backends.json").write_text(json.dumps({"xla": xla, "ipex": ipex}, indent=2) + "\n")
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("matplotlib is not installed: backends.png not drawn", file=sys.stderr)
        return
    fig, (left, middle, right) = plt.subplots(1, 3, figsize=(16, 4.8))
    for mode, color in (("padded", "tab:green"), ("unpadded", "tab:red")):
        counts = [r["compiles"] for r in xla["results"][mode]["requests"]]
        left.plot(range(1, len(counts) + 1), _cumulative(counts), marker="o", color=color,
                  label=f"{mode}: {sum(counts)} compilations")
        seconds = [r["seconds"] for r in xla["results"][mode]["requests"]]
        middle.plot(range(1, len(seconds) + 1), seconds, marker="o", color=color, label=mode)
    left.set(title="XLA (PJRT CPU): cumulative compilations", xlabel="request (mixed sizes, 2 buckets)",
             ylabel="compilations")
    middle.set(title=f"XLA: request time ({xla['steps']} steps, tiny SD1.5)", xlabel="request", ylabel="seconds",
               yscale="log")
    left.legend()
    middle.legend()
    _draw_ipex(right, ipex)
    fig.suptitle(f"comfyx backends on {ipex['environment']['cpu']} ({ipex['environment']['cpu_count']} CPUs)")
    fig.tight_layout()
    fig.savefig(out / "backends.png", dpi=110)


def _draw_ipex(axes, ipex: dict) -> None:
    """Each size's step time relative to plain torch's (median of the rounds' ratios), labelled with the
    minimum in ms; the legend says each output's error."""
    names = {"torch-fp32": "tab:gray", "ipex-fp32": "tab:blue", "ipex-int8": "tab:purple"}
    sizes = list(ipex["sizes"])
    width = 0.8 / len(names)
    for offset, (name, color) in enumerate(names.items()):
        results = [ipex["sizes"][size][name] for size in sizes]
        error = max(r["relative_rms_diff"] for r in results)
        label = name if name == "torch-fp32" else f"{name} (output rel. RMS diff {error:.0e})"
        if name == "ipex-int8":
            label += f", {ipex['int8_layers']} Linear int8"
        bars = axes.bar([i + offset * width for i in range(len(sizes))],
                        [1 / r["speedup_paired_median"] for r in results], width, color=color, label=label)
        axes.bar_label(bars, [f"{r['step_seconds_min'] * 1000:.0f}" for r in results], fontsize="small")
    axes.set_xticks([i + width for i in range(len(sizes))], [f"{size}²" for size in sizes])
    axes.set(title=f"CPU: UNet cfg step, tiny SD1.5 ({ipex['reps']} rounds; labels: min ms)",
             ylabel="time / plain torch fp32 (median of rounds)", ylim=(0, 1.5))
    axes.legend(fontsize="small", loc="upper center")


def _cumulative(values: list[int]) -> list[int]:
    total, result = 0, []
    for value in values:
        total += value
        result.append(total)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("stage", choices=["xla", "ipex", "report"])
    parser.add_argument("--comfyui", default=os.environ.get("COMFYUI_PATH"), help="ComfyUI checkout")
    parser.add_argument("--out", type=Path, default=RESULTS)
    parser.add_argument("--ipex-sizes", type=int, nargs="+", default=[256, 128],
                        help="image sizes for the IPEX comparison")
    parser.add_argument("--reps", type=int, default=25, help="alternating rounds of the IPEX comparison")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    if args.stage == "report":
        report(args.out)
        return
    if not args.comfyui:
        parser.error("--comfyui or COMFYUI_PATH is needed")
    with tempfile.TemporaryDirectory(prefix="comfyx-bench-") as tmp:
        work = Path(tmp)
        if args.stage == "xla":
            data = bench_xla(Path(args.comfyui), work)
        else:
            data = bench_ipex(Path(args.comfyui), work, args.ipex_sizes, args.reps)
    (args.out / f"backends.{args.stage}.json").write_text(json.dumps(data, indent=2) + "\n")


if __name__ == "__main__":
    main()
