"""SDXL's VAE decode at 1024² four ways: how long one decode takes and how much memory it needs.

ComfyUI's own ``Decoder`` (the SD/SDXL VAE's widths, random weights, bf16 on CUDA; float32 on a CPU)
decodes a 1×4×128×128 latent:

- ``eager``: as ComfyUI runs it;
- ``inductor``: ``torch.compile`` in comfyx's speed plan (what ``--compile-vae`` runs without CUDA graphs);
- ``inductor-cudagraphs``: the same, replayed as CUDA graphs (``--compile-vae`` with ``--compile-cuda-graphs``);
- ``cudagraphs``: torch.compile's ``cudagraphs`` backend: ComfyUI's eager kernels, replayed as CUDA graphs.

Why: in ``comfyx bench`` (``bench/results/e2e-sdxl-vae.json``, H100) ``--compile-vae`` took SDXL's peak VRAM
from 0.92x to 0.79x stock's but made the end to end 35 ms longer; this separates the decode's own time
from the rest. Per variant: the median of ``--runs`` decodes (CUDA events; wall clock on a CPU), the
most memory allocated and reserved from before its first call (CUDA: its recording and graph pool
included), and the largest difference from the eager image. The CUDA graph variants are skipped on a CPU,
with the reason.

    python bench/vae_decode.py --comfyui PATH --out bench/results/vae-decode.json
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import torch

# ComfyUI's SD/SDXL VAE (comfy.sd.VAE's ddconfig for AutoencoderKL)
SD_VAE = {"double_z": True, "z_channels": 4, "resolution": 256, "in_channels": 3, "out_ch": 3, "ch": 128,
          "ch_mult": [1, 2, 4, 4], "num_res_blocks": 2, "attn_resolutions": [], "dropout": 0.0}
VARIANTS = ("eager", "inductor", "inductor-cudagraphs", "cudagraphs")


def decoder(comfyui: Path, device: torch.device, dtype: torch.dtype) -> torch.nn.Module:
    sys.path.insert(0, str(comfyui))
    import comfy.options

    comfy.options.enable_args_parsing()
    sys.argv = [sys.argv[0], "--use-pytorch-cross-attention"] + (["--cpu"] if device.type == "cpu" else [])
    from comfy.ldm.modules.diffusionmodules.model import Decoder

    torch.manual_seed(0)
    with torch.device(device):
        module = Decoder(**SD_VAE)
    for layer in module.modules():  # comfy.ops' layers skip torch's init (a checkpoint overwrites them)
        for base in (torch.nn.Conv2d, torch.nn.GroupNorm):
            if isinstance(layer, base):
                base.reset_parameters(layer)
    return module.to(dtype).eval()


def compiled(module: torch.nn.Module, variant: str) -> Any:
    if variant == "eager":
        return module
    if variant == "cudagraphs":
        return torch.compile(module, backend="cudagraphs")
    from comfyx.compile.settings import CompileSettings, plan_for  # the plan comfyx.compile.vae compiles with

    mode = "reduce-overhead" if variant == "inductor-cudagraphs" else "speed"
    return torch.compile(module, **plan_for(CompileSettings(mode=mode)).compile_kwargs())


def skip_reason(variant: str, device: torch.device) -> str | None:
    if "cudagraphs" in variant and device.type != "cuda":
        return "CUDA graphs need a CUDA device"
    return None


def measure(fn: Any, latent: torch.Tensor, runs: int, device: torch.device) -> tuple[list[float], dict, torch.Tensor]:
    """Seconds per decode (after three warmups: compile, CUDA graph warmup and recording); the memory it
    needed, in MiB, counted from before the first call (after emptying torch's cache): the most allocated at
    once (a graph's replays allocate nothing: its recording counts) and the most torch's allocator reserved
    (what the GPU gives the process: graph pools and the cache's fragmentation included); and the last
    image (cloned: a graph reuses its output)."""
    cuda = device.type == "cuda"
    if cuda:
        torch.cuda.synchronize()
        torch.cuda.empty_cache()
        allocated, reserved = torch.cuda.memory_allocated(), torch.cuda.memory_reserved()
        torch.cuda.reset_peak_memory_stats()
    for _ in range(3):
        fn(latent)
    times = []
    for _ in range(runs):
        if cuda:
            start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            start.record()
            image = fn(latent)
            end.record()
            torch.cuda.synchronize()
            times.append(start.elapsed_time(end) / 1000)
        else:
            started = time.perf_counter()
            image = fn(latent)
            times.append(time.perf_counter() - started)
    memory = {}
    if cuda:
        memory = {"peak_allocated_mib": round((torch.cuda.max_memory_allocated() - allocated) / 2**20, 1),
                  "peak_reserved_mib": round((torch.cuda.max_memory_reserved() - reserved) / 2**20, 1)}
    return times, memory, image.clone()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--comfyui", type=Path, required=True, help="a ComfyUI v0.3.64 checkout")
    parser.add_argument("--out", type=Path, required=True, help="the JSON to write (a PNG beside it)")
    parser.add_argument("--runs", type=int, default=10)
    parser.add_argument("--latent", type=int, default=128, help="latent side (128: a 1024² image)")
    parser.add_argument("--variants", default=",".join(VARIANTS))
    args = parser.parse_args()

    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    dtype = torch.bfloat16 if device.type == "cuda" else torch.float32
    module = decoder(args.comfyui, device, dtype)
    latent = torch.randn(1, 4, args.latent, args.latent, device=device, dtype=dtype)
    rows, reference = [], None
    with torch.inference_mode():
        for variant in args.variants.split(","):
            reason = skip_reason(variant, device)
            if reason is not None:
                rows.append({"variant": variant, "skipped": reason})
                continue
            torch._dynamo.reset()
            times, memory, image = measure(compiled(module, variant), latent, args.runs, device)
            reference = image if reference is None else reference
            rows.append({"variant": variant, "decode_ms": round(statistics.median(times) * 1000, 3), **memory,
                         "max_abs_diff_vs_first": float((image.float() - reference.float()).abs().max())})
            print(rows[-1], flush=True)
    report = {"device": torch.cuda.get_device_name() if device.type == "cuda" else "cpu", "torch": torch.__version__,
              "dtype": str(dtype), "latent": [1, 4, args.latent, args.latent], "runs": args.runs, "rows": rows}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    why = chart(report, args.out.with_suffix(".png"))
    if why is not None:
        print(f"no chart: {why}")


def chart(report: dict, path: Path) -> str | None:
    """The PNG beside the JSON; returns why not, if not."""
    try:
        import matplotlib
    except ImportError:
        return "matplotlib is not installed"

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = [r for r in report["rows"] if "decode_ms" in r]
    figure, axes = plt.subplots(1, 3, figsize=(13, 3.6))
    panels = (("decode_ms", "decode (ms)"), ("peak_allocated_mib", "peak allocated (MiB)"),
              ("peak_reserved_mib", "peak reserved (MiB)"))
    for axis, (key, title) in zip(axes, panels, strict=True):
        bars = axis.bar([r["variant"] for r in rows], [r.get(key) or 0 for r in rows])
        axis.bar_label(bars, fmt="%.4g", fontsize=8)
        axis.set_title(title)
        axis.tick_params(axis="x", labelrotation=15, labelsize=8)
    side = report["latent"][2] * 8
    figure.suptitle(f"SDXL VAE decode {side}² on {report['device']} ({report['torch']})", fontsize=10)
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)
    return None


if __name__ == "__main__":
    main()
