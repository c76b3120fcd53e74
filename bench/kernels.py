"""comfyx-kernels vs comfy-kitchen 0.2.40 on one GPU: fp8 quantize, dynamic quantize, RoPE,
fp8 linear. Writes bench/results/kernels.json and kernels.png (or --out DIR).

GPU time: CUDA events around a CUDA graph of 50 calls, median of 5 replays (graph replay keeps
host overhead out, so small sizes show the kernels' own time). The linear rows of one shape
(bf16, fp8 in both accumulation modes, comfy-kitchen) are timed side by side: their graphs
replayed in turn for 15 rounds, so clock drift reaches all alike, since their ratios are the
figure; the fp8 outputs' relative errors (float64 references, bf16 linear) are recorded too.
Wall time: host clock per call over 50 eager back-to-back calls (what a Python caller pays,
launch overhead included). "% copy" is bytes moved (each input read once, each output written
once) over GPU time, against a device-to-device copy measured in the same run. Every comfyx row
asserts the backend that ran; comfy-kitchen rows call one of its backend modules directly (its
use_backend falls back silently).

Usage: python bench/kernels.py [--out DIR]
"""

from __future__ import annotations

import argparse
import itertools
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
from comfyx_kernels.backends import eager as cx_eager
from comfyx_kernels.quantized_tensor import FAST_ACCUM, QuantizedTensor, fp8_linear
from comfyx_kernels.registry import PRIORITY

CALLS, RUNS = 50, 5
ROTATE_BYTES = 256 << 20  # > 5 x the H100's 50 MB L2
FP8 = torch.float8_e4m3fn
MATRIX_SHAPES = [(8192, 8192), (4096, 3072), (4608, 3072)]
# RoPE q and k (B, H, L, D) bf16 with float32 freqs: Flux at 1024² is (1, 24, 4608, 128).
ROPE_SHAPES = [(1, 24, 4608, 128), (1, 24, 4096, 128), (1, 64, 8192, 128)]
LINEAR_SHAPES = [(4096, 3072, 3072), (4096, 3072, 12288), (8192, 8192, 8192)]
ACCUMULATION = {False: "exact accum", True: "fast accum"}
# fp8 vs bf16 linear, timed side by side: rounds of one graph replay (of LINEAR_CALLS calls) each.
LINEAR_CALLS, LINEAR_ROUNDS = 10, 15
TARGETS = {
    "quantize_fp8 8192x8192 % copy": 97.0,
    "dynamic_quantize_fp8 4096x3072 gpu_us": 20.0,
    "rope (1, 24, 4608, 128) % copy": 90.0,
    "fp8_linear speedup (4096, 3072, 3072)": 1.21,
    "fp8_linear speedup (4096, 3072, 12288)": 1.51,
    "fp8_linear speedup (8192, 8192, 8192)": 1.75,
}


def wall_us(fn: Callable[[], object]) -> float:
    """Host time per call over CALLS back-to-back calls (launch overhead included)."""
    times = []
    for _ in range(RUNS):
        torch.cuda.synchronize()
        start = time.perf_counter()
        for _ in range(CALLS):
            fn()
        torch.cuda.synchronize()
        times.append((time.perf_counter() - start) / CALLS * 1e6)
    return statistics.median(times)


def gpu_us(fn: Callable[[], object]) -> tuple[float, str]:
    """GPU time per call: CUDA events around a replayed CUDA graph of CALLS calls, so host
    overhead between launches does not count; plain event timing if capture fails."""
    try:
        graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(graph):
            for _ in range(CALLS):
                fn()
    except RuntimeError as error:
        print(f"graph capture failed ({error}); timing eager launches", file=sys.stderr)
        torch.cuda.synchronize()
        graph = None
    times = []
    for _ in range(RUNS):
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        if graph is not None:
            graph.replay()
        else:
            for _ in range(CALLS):
                fn()
        end.record()
        torch.cuda.synchronize()
        times.append(start.elapsed_time(end) / CALLS * 1e3)
    method = "cuda graph" if graph is not None else "events"
    del graph
    torch.cuda.empty_cache()
    return statistics.median(times), method


def gpu_and_wall_us(fn: Callable[[], object]) -> tuple[float, float, str]:
    for _ in range(3):  # warm-up: autotuning, caches, allocations
        fn()
    torch.cuda.synchronize()
    wall = wall_us(fn)
    gpu, method = gpu_us(fn)
    return gpu, wall, method


def copy_bandwidth_gbs() -> float:
    """Device-to-device copy of 1 GiB (bytes read + written), after a second of warm-up so the
    clocks have ramped; large copies are not launch-bound, so plain events suffice."""
    src = torch.empty(1 << 30, dtype=torch.uint8, device="cuda")
    dst = torch.empty_like(src)
    deadline = time.perf_counter() + 1.0
    while time.perf_counter() < deadline:
        dst.copy_(src)
        torch.cuda.synchronize()
    best = 0.0
    for _ in range(RUNS):
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        for _ in range(10):
            dst.copy_(src)
        end.record()
        torch.cuda.synchronize()
        best = max(best, 2 * src.numel() * 10 / (start.elapsed_time(end) * 1e-3) / 1e9)
    return best


def rotating(*tensors: torch.Tensor) -> Callable[[], tuple[torch.Tensor, ...]]:
    """Each call returns the next of enough copies of `tensors` that together they exceed the
    L2 cache several times over, so repeated calls read their inputs from device memory."""
    size = sum(t.numel() * t.element_size() for t in tensors)
    copies = max(1, -(-ROTATE_BYTES // size))
    sets = [tensors] + [tuple(t.clone() for t in tensors) for _ in range(copies - 1)]
    cycle = itertools.cycle(sets)
    return lambda: next(cycle)


def expect_backend(fn: Callable[[], object], op: str, backend: str) -> Callable[[], object]:
    """The call to time: fn itself when `backend` is the one the registry picks first (cuda),
    else fn under use_backend; either way checked once to run `backend` for every op in it."""

    def forced():
        with cx.use_backend(backend):
            return fn()

    call = fn if backend == PRIORITY[0] else forced
    with cx.backend_trace() as trace:
        call()
    ran = {b for _, b in trace}
    assert ran == {backend}, f"{op}: expected {backend}, ran {trace}"
    return call


def interleaved_gpu_us(fns: list[Callable[[], object]]) -> list[float]:
    """GPU time per call of each fn: their CUDA graphs (LINEAR_CALLS calls each) replayed in
    turn, round after round, so clock and temperature drift reach them all alike."""
    graphs = []
    for fn in fns:
        graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(graph):
            for _ in range(LINEAR_CALLS):
                fn()
        graphs.append(graph)
    times: list[list[float]] = [[] for _ in fns]
    for _ in range(LINEAR_ROUNDS):
        for graph, series in zip(graphs, times, strict=True):
            start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            start.record()
            graph.replay()
            end.record()
            torch.cuda.synchronize()
            series.append(start.elapsed_time(end) / LINEAR_CALLS * 1e3)
    del graphs
    torch.cuda.empty_cache()
    return [statistics.median(series) for series in times]


class Results:
    def __init__(self, copy_gbs: float):
        self.copy_gbs = copy_gbs
        self.rows: list[dict] = []
        self.errors: dict[str, dict] = {}  # fp8 linear output errors per shape

    def _record(self, op, shape, impl, backend, gpu, wall, method, bytes_moved=None, **extra):
        row = {
            "op": op,
            "shape": str(shape),
            "impl": impl,
            "backend": backend,
            "gpu_us": round(gpu, 2),
            "wall_us": round(wall, 2),
            "gpu_method": method,
            **extra,
        }
        if bytes_moved:
            row["pct_copy"] = round(100 * bytes_moved / gpu / 1e3 / self.copy_gbs, 1)
        self.rows.append(row)
        print(json.dumps(row), flush=True)
        return row

    def add(self, op, shape, impl, backend, fn, bytes_moved=None, **extra):
        gpu, wall, method = gpu_and_wall_us(fn)
        return self._record(op, shape, impl, backend, gpu, wall, method, bytes_moved, **extra)

    def add_side_by_side(self, specs: list[dict]) -> list[dict]:
        """Rows for calls whose ratios are the figure (fp8 vs bf16 linear), timed interleaved.
        Each spec: op, shape, impl, backend, fn and any extra fields of its row."""
        for spec in specs:
            for _ in range(3):  # warm-up: cuBLASLt heuristics, allocations
                spec["fn"]()
        torch.cuda.synchronize()
        walls = [wall_us(spec["fn"]) for spec in specs]
        gpus = interleaved_gpu_us([spec["fn"] for spec in specs])
        method = f"cuda graphs interleaved, median of {LINEAR_ROUNDS} x {LINEAR_CALLS} calls"
        return [
            self._record(**{k: v for k, v in spec.items() if k != "fn"}, gpu=gpu, wall=wall, method=method)
            for spec, wall, gpu in zip(specs, walls, gpus, strict=True)
        ]


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
    inputs = rotating(x)
    moved = 3 * x.numel()

    def ours(op, backend, call, **extra):
        results.add(op, shape, "comfyx", backend, expect_backend(call, op, backend), moved, **extra)

    # Bit-exactness at this size: elements that differ from eager (the IEEE divide).
    expected = {
        "quantize_fp8": cx_eager.quantize_per_tensor_fp8(x, scale, FP8),
        "dynamic_quantize_fp8": cx_eager.quantize_fp8_dynamic(x, FP8)[0],
    }

    def differ_from_eager(op, backend):
        with cx.use_backend(backend):
            q = cx.quantize_per_tensor_fp8(x, scale) if op == "quantize_fp8" else cx.quantize_fp8_dynamic(x)[0]
        return int((q.view(torch.uint8) != expected[op].view(torch.uint8)).sum())

    for backend in ("cuda", "triton"):
        ours(
            "quantize_fp8", backend, lambda: cx.quantize_per_tensor_fp8(*inputs(), scale),
            differ_from_eager=differ_from_eager("quantize_fp8", backend),
        )
        ours(
            "dynamic_quantize_fp8", backend, lambda: cx.quantize_fp8_dynamic(*inputs()),
            differ_from_eager=differ_from_eager("dynamic_quantize_fp8", backend),
        )
    if ck_cuda:
        call = lambda: ck_cuda.quantize_per_tensor_fp8(*inputs(), scale)  # noqa: E731
        results.add("quantize_fp8", shape, "comfy-kitchen", "cuda", call, moved)

        def kitchen_dynamic():  # comfy-kitchen has no dynamic quantize: torch amax, then its kernel
            (xi,) = inputs()
            return ck_cuda.quantize_per_tensor_fp8(xi, xi.abs().amax().float() / 448)

        results.add("dynamic_quantize_fp8", shape, "comfy-kitchen", "torch amax + cuda", kitchen_dynamic, moved)
    if ck_tq:
        call = lambda: ck_tq.quantize_per_tensor_fp8(*inputs(), scale)  # noqa: E731
        results.add("quantize_fp8", shape, "comfy-kitchen", "triton", call, moved)

    q_inputs = rotating(cx.quantize_per_tensor_fp8(x, scale))
    ours("dequantize_fp8", "cuda", lambda: cx.dequantize_per_tensor_fp8(*q_inputs(), scale))
    if ck_cuda:
        call = lambda: ck_cuda.dequantize_per_tensor_fp8(*q_inputs(), scale, torch.bfloat16)  # noqa: E731
        results.add("dequantize_fp8", shape, "comfy-kitchen", "cuda", call, moved)


def bench_rope(results, shape, ck_cuda, ck_trope):
    seq, d = shape[2], shape[3]
    xq = torch.randn(shape, device="cuda", dtype=torch.bfloat16)
    xk = torch.randn(shape, device="cuda", dtype=torch.bfloat16)
    freqs = torch.randn(1, 1, seq, d // 2, 2, 2, device="cuda")
    moved = 2 * 2 * xq.numel() * 2 + freqs.numel() * 4
    with cx.use_backend("cuda"):
        ours_q, _ = cx.apply_rope(xq, xk, freqs)
    with cx.use_backend("eager"):
        reference = cx.apply_rope1(xq.cpu(), freqs.cpu()).cuda()
    torch.testing.assert_close(ours_q, reference, rtol=2**-7, atol=1e-4)  # one bf16 ulp
    inputs = rotating(xq, xk, freqs)

    def ours(op, backend, call, **extra):
        results.add(op, shape, "comfyx", backend, expect_backend(call, op, backend), moved, **extra)

    default_per_thread = cx_cuda.ROPE_HEADS_PER_THREAD
    for per_thread in (1, 2, 4):
        cx_cuda.ROPE_HEADS_PER_THREAD = per_thread
        ours("rope", "cuda", lambda: cx.apply_rope(*inputs()), heads_per_thread=per_thread)
    cx_cuda.ROPE_HEADS_PER_THREAD = default_per_thread
    ours("rope_inplace", "cuda", lambda: cx.apply_rope_(*inputs()))
    ours("rope", "triton", lambda: cx.apply_rope(*inputs()))
    if ck_cuda:
        results.add("rope", shape, "comfy-kitchen", "cuda", lambda: ck_cuda.apply_rope(*inputs()), moved)
    if ck_trope:
        results.add("rope", shape, "comfy-kitchen", "triton", lambda: ck_trope.apply_rope(*inputs()), moved)


def relative_error(actual: torch.Tensor, reference: torch.Tensor) -> float:
    """‖actual − reference‖ / ‖reference‖ in float64."""
    reference = reference.double()
    return round(float((actual.double() - reference).norm() / reference.norm()), 6)


def linear_errors(x, w, bias, input_scale, qw, outputs: dict[str, torch.Tensor]) -> dict:
    """Each fp8 output's relative error against float64 products: of the same dequantized
    operands (what the GEMM's accumulation adds), of the unquantized operands, and against the
    bf16 linear; with the fp8 quantization error itself (dequantized vs unquantized operands)."""
    qx = cx.quantize_per_tensor_fp8(x, input_scale)
    dequantized = torch.nn.functional.linear(  # exact in float64, as the GEMM sees them
        qx.float().double() * input_scale.double(),
        qw.qdata.float().double() * qw.scale.double(),
        bias.double(),
    )
    unquantized = torch.nn.functional.linear(x.double(), w.double(), bias.double())
    bf16 = torch.nn.functional.linear(x, w, bias)
    errors = {
        "fp8_quantization_vs_unquantized": relative_error(dequantized, unquantized),
        "bf16_linear_vs_unquantized": relative_error(bf16, unquantized),
    }
    for name, out in outputs.items():
        errors[name] = {
            "vs_dequantized_fp64": relative_error(out, dequantized),
            "vs_unquantized_fp64": relative_error(out, unquantized),
            "vs_bf16_linear": relative_error(out, bf16),
        }
    return errors


def bench_linear(results, shape, ck_cuda):
    m, k, n = shape
    x = torch.randn(m, k, device="cuda", dtype=torch.bfloat16)
    w = torch.randn(n, k, device="cuda", dtype=torch.bfloat16) / k**0.5
    bias = torch.randn(n, device="cuda", dtype=torch.bfloat16)
    qw = QuantizedTensor.from_float(w)
    input_scale = (x.abs().amax().float() / 448).reshape(())
    inputs = rotating(x)
    flops = 2 * m * k * n
    base = {"shape": shape, "backend": "cuda"}
    specs = [
        {**base, "op": "linear_bf16", "impl": "torch", "backend": "cublas",
         "fn": lambda: torch.nn.functional.linear(*inputs(), w, bias)},
    ]
    outputs = {}
    for fast in (False, True):
        mode = ACCUMULATION[fast]
        static = lambda fast=fast: fp8_linear(*inputs(), qw, bias, input_scale, fast_accum=fast)  # noqa: E731
        specs.append({**base, "op": "fp8_linear_static", "impl": "comfyx", "accumulation": mode,
                      "fn": expect_backend(static, "fp8_linear", "cuda")})
        outputs[f"comfyx {mode}"] = fp8_linear(x, qw, bias, input_scale, fast_accum=fast)
    dynamic = lambda: fp8_linear(*inputs(), qw, bias)  # noqa: E731 - the default accumulation
    specs.append({**base, "op": "fp8_linear_dynamic", "impl": "comfyx", "accumulation": ACCUMULATION[FAST_ACCUM],
                  "fn": expect_backend(dynamic, "fp8_linear", "cuda")})
    if ck_cuda:
        w_t = qw.qdata.t()

        def kitchen_linear(xi, fast):
            qx = ck_cuda.quantize_per_tensor_fp8(xi, input_scale)
            return torch._scaled_mm(
                qx, w_t, scale_a=input_scale, scale_b=qw.scale, bias=bias, out_dtype=torch.bfloat16,
                use_fast_accum=fast,
            )

        # comfy-kitchen's own linear accumulates exactly; the fast row is its quantize with ours.
        for fast in (False, True):
            mode = ACCUMULATION[fast]
            specs.append({**base, "op": "fp8_linear_static", "impl": "comfy-kitchen", "accumulation": mode,
                          "fn": lambda fast=fast: kitchen_linear(*inputs(), fast)})
            outputs[f"comfy-kitchen {mode}"] = kitchen_linear(x, fast)
    rows = results.add_side_by_side(specs)
    bf16 = rows[0]
    for row in rows:
        row["tflops"] = round(flops / row["gpu_us"] / 1e6, 1)
        row["speedup_vs_bf16"] = round(bf16["gpu_us"] / row["gpu_us"], 3)
    results.errors[str(shape)] = errors = linear_errors(x, w, bias, input_scale, qw, outputs)
    print(json.dumps({"linear_errors": str(shape), **errors}), flush=True)


def check_targets(results) -> dict:
    """Each target with comfyx's best cuda-backend figure and comfy-kitchen's best beside it.
    fp8 linear: comfyx in its default accumulation (FAST_ACCUM), comfy-kitchen in its own
    (exact); the other mode of each is reported beside them."""
    default_mode, exact_mode = ACCUMULATION[FAST_ACCUM], ACCUMULATION[False]

    def best(op, shape, metric, impl, lower_is_better=False, accumulation=None):
        values = [
            r[metric]
            for r in results.rows
            if r["op"] == op
            and r["shape"] == str(shape)
            and r["impl"] == impl
            and (impl != "comfyx" or r["backend"] == "cuda")
            and r.get("heads_per_thread", cx_cuda.ROPE_HEADS_PER_THREAD) == cx_cuda.ROPE_HEADS_PER_THREAD
            and r.get("accumulation") == accumulation
        ]
        if not values:
            return None
        return min(values) if lower_is_better else max(values)

    checks = {
        "quantize_fp8 8192x8192 % copy": ("quantize_fp8", (8192, 8192), "pct_copy", False),
        "dynamic_quantize_fp8 4096x3072 gpu_us": ("dynamic_quantize_fp8", (4096, 3072), "gpu_us", True),
        "rope (1, 24, 4608, 128) % copy": ("rope", (1, 24, 4608, 128), "pct_copy", False),
    }
    for shape in LINEAR_SHAPES:
        checks[f"fp8_linear speedup {shape}"] = ("fp8_linear_static", shape, "speedup_vs_bf16", False)
    report = {}
    for key, (op, shape, metric, lower) in checks.items():
        linear = op.startswith("fp8_linear")
        value = best(op, shape, metric, "comfyx", lower, default_mode if linear else None)
        target = TARGETS[key]
        met = value is not None and (value <= target if lower else value >= target)
        kitchen = best(op, shape, metric, "comfy-kitchen", lower, exact_mode if linear else None)
        report[key] = {"value": value, "target": target, "met": met, "comfy_kitchen": kitchen}
        if linear:
            report[key]["accumulation"] = default_mode
            for impl in ("comfyx", "comfy-kitchen"):
                report[key][f"{impl} by accumulation"] = {
                    mode: best(op, shape, metric, impl, lower, mode) for mode in ACCUMULATION.values()
                }
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

    def series(row: dict) -> str:
        return " ".join(filter(None, (row["impl"], row["backend"], row.get("accumulation"))))

    for axis, (op, metric, label) in zip(axes, panels, strict=True):
        default = cx_cuda.ROPE_HEADS_PER_THREAD
        rows = [
            r for r in results.rows if r["op"] == op and metric in r and r.get("heads_per_thread", default) == default
        ]
        shapes = list(dict.fromkeys(r["shape"] for r in rows))
        impls = list(dict.fromkeys(series(r) for r in rows))
        width = 0.8 / max(len(impls), 1)
        for i, impl in enumerate(impls):
            values = [
                next((r[metric] for r in rows if r["shape"] == s and series(r) == impl), 0)
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
    sections = [(bench_quantize, s, (ck_cuda, ck_tq)) for s in MATRIX_SHAPES]
    sections += [(bench_rope, s, (ck_cuda, ck_trope)) for s in ROPE_SHAPES]
    sections += [(bench_linear, s, (ck_cuda,)) for s in LINEAR_SHAPES]
    errors = []
    for bench, shape, kitchen in sections:
        try:
            bench(results, shape, *kitchen)
        except Exception as error:  # noqa: BLE001 - record it, finish the other sections
            errors.append(f"{bench.__name__} {shape}: {type(error).__name__}: {error}")
            print(errors[-1], file=sys.stderr, flush=True)
    targets = check_targets(results)
    args.out.mkdir(parents=True, exist_ok=True)
    summary = {
        "device": torch.cuda.get_device_name(),
        "torch": torch.__version__,
        "python": platform.python_version(),
        "copy_bandwidth_gbs": round(results.copy_gbs, 1),
        "method": f"CUDA events, median of {RUNS} x {CALLS} calls (linear: {LINEAR_ROUNDS} interleaved "
        f"rounds x {LINEAR_CALLS}); wall = host time per call",
        "fp8_linear_default_fast_accum": FAST_ACCUM,
        "targets": targets,
        "fp8_linear_relative_errors": results.errors,
        "errors": errors,
        "rows": results.rows,
    }
    (args.out / "kernels.json").write_text(json.dumps(summary, indent=2))
    plot(results, args.out / "kernels.png")
    for key, outcome in targets.items():
        print(
            f"{'MET ' if outcome['met'] else 'MISS'} {key}: {outcome['value']} "
            f"(target {outcome['target']}, comfy-kitchen {outcome['comfy_kitchen']})"
        )


if __name__ == "__main__":
    main()
