"""comfyx-kernels vs comfy-kitchen 0.2.40 on one GPU: fp8 quantize, dynamic quantize, RoPE,
fp8 linear. Writes bench/results/kernels.json and kernels.png (or --out DIR).

GPU time: CUDA events around 50 back-to-back calls, median of 5 runs (as in
shared/anchors.md). Wall time: host clock per call over the same 50 calls, synchronized at the
end (what a Python caller pays, launch overhead included). "% copy" is bytes moved (each input
read once, each output written once) over time, against a device-to-device copy measured in the
same run. Every comfyx row asserts the backend that ran; comfy-kitchen rows call one of its
backend modules directly (its use_backend falls back silently).

Usage: python bench/kernels.py [--out DIR]
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

import comfyx_kernels as cx
import torch
from comfyx_kernels.backends import cuda as cx_cuda
from comfyx_kernels.quantized_tensor import QuantizedTensor, fp8_linear

CALLS, RUNS = 50, 5
FP8 = torch.float8_e4m3fn
MATRIX_SHAPES = [(8192, 8192), (4096, 3072), (4608, 3072)]
# RoPE q and k (B, H, L, D) bf16 with float32 freqs: Flux at 1024² is (1, 24, 4608, 128).
ROPE_SHAPES = [(1, 24, 4608, 128), (1, 24, 4096, 128), (1, 64, 8192, 128)]
LINEAR_SHAPES = [(4096, 3072, 3072), (4096, 3072, 12288), (8192, 8192, 8192)]
TARGETS = {
    "quantize_fp8 8192x8192 % copy": 97.0,
    "dynamic_quantize_fp8 4096x3072 gpu_us": 20.0,
    "rope (1, 24, 4608, 128) % copy": 90.0,
    "fp8_linear speedup (4096, 3072, 3072)": 1.21,
    "fp8_linear speedup (4096, 3072, 12288)": 1.51,
    "fp8_linear speedup (8192, 8192, 8192)": 1.75,
}


def gpu_and_wall_us(fn: Callable[[], object]) -> tuple[float, float]:
    for _ in range(3):
        fn()
    torch.cuda.synchronize()
    gpu, wall = [], []
    for _ in range(RUNS):
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        torch.cuda.synchronize()
        host_start = time.perf_counter()
        start.record()
        for _ in range(CALLS):
            fn()
        end.record()
        torch.cuda.synchronize()
        wall.append((time.perf_counter() - host_start) / CALLS * 1e6)
        gpu.append(start.elapsed_time(end) / CALLS * 1e3)
    return statistics.median(gpu), statistics.median(wall)


def copy_bandwidth_gbs() -> float:
    src = torch.empty(1 << 30, dtype=torch.uint8, device="cuda")
    dst = torch.empty_like(src)
    gpu_us, _ = gpu_and_wall_us(lambda: dst.copy_(src))
    return 2 * src.numel() / gpu_us / 1e3


def expect_backend(fn: Callable[[], object], op: str, backend: str) -> Callable[[], object]:
    """Runs fn once under use_backend and checks that `backend` ran every op in it."""
    with cx.backend_trace() as trace, cx.use_backend(backend):
        fn()
    ran = {b for _, b in trace}
    assert ran == {backend}, f"{op}: expected {backend}, ran {trace}"

    def forced():
        with cx.use_backend(backend):
            return fn()

    return forced


class Results:
    def __init__(self, copy_gbs: float):
        self.copy_gbs = copy_gbs
        self.rows: list[dict] = []

    def add(self, op, shape, impl, backend, fn, bytes_moved=None, **extra):
        gpu_us, wall_us = gpu_and_wall_us(fn)
        row = {
            "op": op,
            "shape": str(shape),
            "impl": impl,
            "backend": backend,
            "gpu_us": round(gpu_us, 2),
            "wall_us": round(wall_us, 2),
            **extra,
        }
        if bytes_moved:
            row["pct_copy"] = round(100 * bytes_moved / gpu_us / 1e3 / self.copy_gbs, 1)
        self.rows.append(row)
        print(json.dumps(row), flush=True)
        return row


def kitchen_backends():
    try:
        from comfy_kitchen.backends import cuda as ck_cuda
    except Exception as error:  # noqa: BLE001 - report any load failure and go on
        print(f"comfy-kitchen cuda backend unavailable: {error}", file=sys.stderr)
        ck_cuda = None
    try:
        from comfy_kitchen.backends.triton import quantization as ck_tq
        from comfy_kitchen.backends.triton import rope as ck_trope
    except Exception as error:  # noqa: BLE001
        print(f"comfy-kitchen triton backend unavailable: {error}", file=sys.stderr)
        ck_tq = ck_trope = None
    return ck_cuda, ck_tq, ck_trope


def bench_quantize(results, shape, ck_cuda, ck_tq):
    x = torch.randn(shape, device="cuda", dtype=torch.bfloat16)
    scale = (x.abs().amax().float() / 448).reshape(())
    n = x.numel()
    moved = 3 * n
    for backend in ("cuda", "triton"):
        fn = expect_backend(lambda: cx.quantize_per_tensor_fp8(x, scale), "quantize", backend)
        results.add("quantize_fp8", shape, "comfyx", backend, fn, moved)
    if ck_cuda:
        results.add(
            "quantize_fp8", shape, "comfy-kitchen", "cuda", lambda: ck_cuda.quantize_per_tensor_fp8(x, scale), moved
        )
    if ck_tq:
        results.add(
            "quantize_fp8", shape, "comfy-kitchen", "triton", lambda: ck_tq.quantize_per_tensor_fp8(x, scale), moved
        )

    fn = expect_backend(lambda: cx.quantize_fp8_dynamic(x), "dynamic", "cuda")
    results.add("dynamic_quantize_fp8", shape, "comfyx", "cuda", fn, moved)
    fn = expect_backend(lambda: cx.quantize_fp8_dynamic(x), "dynamic", "triton")
    results.add("dynamic_quantize_fp8", shape, "comfyx", "triton", fn, moved)
    if ck_cuda:
        # comfy-kitchen has no dynamic quantize: amax in torch, then its quantize kernel.
        results.add(
            "dynamic_quantize_fp8",
            shape,
            "comfy-kitchen",
            "torch amax + cuda",
            lambda: ck_cuda.quantize_per_tensor_fp8(x, x.abs().amax().float() / 448),
            moved,
        )

    q = cx.quantize_per_tensor_fp8(x, scale)
    fn = expect_backend(lambda: cx.dequantize_per_tensor_fp8(q, scale), "dequantize", "cuda")
    results.add("dequantize_fp8", shape, "comfyx", "cuda", fn, moved)
    if ck_cuda:
        results.add(
            "dequantize_fp8",
            shape,
            "comfy-kitchen",
            "cuda",
            lambda: ck_cuda.dequantize_per_tensor_fp8(q, scale, torch.bfloat16),
            moved,
        )


def bench_rope(results, shape, ck_cuda, ck_trope):
    seq, d = shape[2], shape[3]
    xq = torch.randn(shape, device="cuda", dtype=torch.bfloat16)
    xk = torch.randn(shape, device="cuda", dtype=torch.bfloat16)
    freqs = torch.randn(1, 1, seq, d // 2, 2, 2, device="cuda")
    moved = 2 * 2 * xq.numel() * 2 + freqs.numel() * 4
    ours, _ = cx.apply_rope(xq, xk, freqs)
    torch.testing.assert_close(ours, cx.apply_rope1(xq.cpu(), freqs.cpu()).cuda(), rtol=0, atol=0)
    for per_thread in (2, 4, 8):
        cx_cuda.ROPE_HEADS_PER_THREAD = per_thread
        fn = expect_backend(lambda: cx.apply_rope(xq, xk, freqs), "rope", "cuda")
        results.add("rope", shape, "comfyx", "cuda", fn, moved, heads_per_thread=per_thread)
    cx_cuda.ROPE_HEADS_PER_THREAD = 4
    fn = expect_backend(lambda: cx.apply_rope_(xq, xk, freqs), "rope_", "cuda")
    results.add("rope_inplace", shape, "comfyx", "cuda", fn, moved)
    fn = expect_backend(lambda: cx.apply_rope(xq, xk, freqs), "rope", "triton")
    results.add("rope", shape, "comfyx", "triton", fn, moved)
    if ck_cuda:
        results.add("rope", shape, "comfy-kitchen", "cuda", lambda: ck_cuda.apply_rope(xq, xk, freqs), moved)
    if ck_trope:
        results.add("rope", shape, "comfy-kitchen", "triton", lambda: ck_trope.apply_rope(xq, xk, freqs), moved)


def bench_linear(results, shape, ck_cuda):
    m, k, n = shape
    x = torch.randn(m, k, device="cuda", dtype=torch.bfloat16)
    w = torch.randn(n, k, device="cuda", dtype=torch.bfloat16) / k**0.5
    bias = torch.randn(n, device="cuda", dtype=torch.bfloat16)
    qw = QuantizedTensor.from_float(w)
    input_scale = (x.abs().amax().float() / 448).reshape(())
    flops = 2 * m * k * n
    bf16 = results.add(
        "linear_bf16", (m, k, n), "torch", "cublas", lambda: torch.nn.functional.linear(x, w, bias), tflops=None
    )
    rows = [
        results.add(
            "fp8_linear_static",
            (m, k, n),
            "comfyx",
            "cuda",
            expect_backend(lambda: fp8_linear(x, qw, bias, input_scale), "fp8_linear", "cuda"),
        ),
        results.add(
            "fp8_linear_dynamic",
            (m, k, n),
            "comfyx",
            "cuda",
            expect_backend(lambda: fp8_linear(x, qw, bias), "fp8_linear", "cuda"),
        ),
    ]
    if ck_cuda:
        w_t = qw.qdata.t()

        def kitchen_linear():
            qx = ck_cuda.quantize_per_tensor_fp8(x, input_scale)
            return torch._scaled_mm(qx, w_t, scale_a=input_scale, scale_b=qw.scale, bias=bias, out_dtype=torch.bfloat16)

        rows.append(results.add("fp8_linear_static", (m, k, n), "comfy-kitchen", "cuda", kitchen_linear))
    for row in (bf16, *rows):
        row["tflops"] = round(flops / row["gpu_us"] / 1e6, 1)
        row["speedup_vs_bf16"] = round(bf16["gpu_us"] / row["gpu_us"], 3)


def check_targets(results) -> dict:
    def find(op, shape, impl="comfyx", backend="cuda"):
        matches = [
            r
            for r in results.rows
            if r["op"] == op and r["shape"] == str(shape) and r["impl"] == impl and r["backend"] == backend
        ]
        return matches

    quant = find("quantize_fp8", (8192, 8192))
    dyn = find("dynamic_quantize_fp8", (4096, 3072))
    rope = find("rope", (1, 24, 4608, 128))
    outcome = {
        "quantize_fp8 8192x8192 % copy": max(r["pct_copy"] for r in quant),
        "dynamic_quantize_fp8 4096x3072 gpu_us": min(r["gpu_us"] for r in dyn),
        "rope (1, 24, 4608, 128) % copy": max(r["pct_copy"] for r in rope),
    }
    for shape in LINEAR_SHAPES:
        rows = find("fp8_linear_static", shape)
        outcome[f"fp8_linear speedup {shape}"] = max(r["speedup_vs_bf16"] for r in rows)
    report = {}
    for key, target in TARGETS.items():
        value = outcome[key]
        met = value <= target if key.endswith("gpu_us") else value >= target
        report[key] = {"value": value, "target": target, "met": met}
    return report


def plot(results, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    panels = [
        ("quantize_fp8", "pct_copy", "% of copy bandwidth"),
        ("dynamic_quantize_fp8", "gpu_us", "GPU µs (lower is better)"),
        ("rope", "pct_copy", "% of copy bandwidth"),
        ("fp8_linear_static", "speedup_vs_bf16", "speedup over bf16 linear"),
    ]
    fig, axes = plt.subplots(1, len(panels), figsize=(22, 5))
    for axis, (op, metric, label) in zip(axes, panels, strict=True):
        rows = [r for r in results.rows if r["op"] == op and metric in r and r.get("heads_per_thread", 4) == 4]
        shapes = list(dict.fromkeys(r["shape"] for r in rows))
        impls = list(dict.fromkeys(f"{r['impl']} {r['backend']}" for r in rows))
        width = 0.8 / max(len(impls), 1)
        for i, impl in enumerate(impls):
            values = [
                next((r[metric] for r in rows if r["shape"] == s and f"{r['impl']} {r['backend']}" == impl), 0)
                for s in shapes
            ]
            axis.bar([j + i * width for j in range(len(shapes))], values, width, label=impl)
        axis.set_xticks([j + 0.4 - width / 2 for j in range(len(shapes))], shapes, fontsize=7)
        axis.set_title(op)
        axis.set_ylabel(label)
        axis.legend(fontsize=7)
    fig.suptitle(f"comfyx-kernels vs comfy-kitchen 0.2.40 — {torch.cuda.get_device_name()}")
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results")
    args = parser.parse_args()
    if not torch.cuda.is_available():
        sys.exit("bench/kernels.py needs a CUDA GPU")
    torch.manual_seed(0)
    results = Results(copy_bandwidth_gbs())
    print(f"device-to-device copy: {results.copy_gbs:.0f} GB/s", flush=True)
    ck_cuda, ck_tq, ck_trope = kitchen_backends()
    for shape in MATRIX_SHAPES:
        bench_quantize(results, shape, ck_cuda, ck_tq)
    for shape in ROPE_SHAPES:
        bench_rope(results, shape, ck_cuda, ck_trope)
    for shape in LINEAR_SHAPES:
        bench_linear(results, shape, ck_cuda)
    targets = check_targets(results)
    args.out.mkdir(parents=True, exist_ok=True)
    summary = {
        "device": torch.cuda.get_device_name(),
        "torch": torch.__version__,
        "python": platform.python_version(),
        "copy_bandwidth_gbs": round(results.copy_gbs, 1),
        "method": f"CUDA events, median of {RUNS} x {CALLS} calls; wall = host time per call",
        "targets": targets,
        "rows": results.rows,
    }
    (args.out / "kernels.json").write_text(json.dumps(summary, indent=2))
    plot(results, args.out / "kernels.png")
    for key, outcome in targets.items():
        print(f"{'MET ' if outcome['met'] else 'MISS'} {key}: {outcome['value']} (target {outcome['target']})")


if __name__ == "__main__":
    main()
