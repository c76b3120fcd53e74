"""How the activation of an fp8 linear is quantized, under torch.compile, on SDXL's linear shapes.

Each variant compiles ``linear(producer(x))`` (the producer: the LayerNorm or GEGLU gate that
feeds the layer in a transformer block) and is timed per call (replayed in a CUDA graph: the
GPU's time, not Python's launch overhead). Variants:

- ``fp16``: ``F.linear`` in the activation's dtype (stock bf16/fp16);
- ``stock``: ComfyUI v0.3.64's ``--fast fp8_matrix_mult`` (clamp to ±448, cast with scale 1);
- ``tensor``: one dynamic scale for the whole activation (amax over every element);
- ``tensor-2level``: the same scale, its amax taken per row first (fusable into the producer);
- ``row``: one dynamic scale per row (token), applied to the tensor-wise GEMM's bf16 output
  (``+residual``: with a residual add after the layer, into which inductor can fuse it).

Also the error of each against the fp16 result (relative Frobenius). Writes JSON (``--out``).

    python bench/fp8_activation.py --out bench/results/fp8-activation.json
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch
import torch.nn.functional as F

FP8 = torch.float8_e4m3fn
FP8_MAX = 448.0
TINY = torch.finfo(torch.float32).tiny

# SDXL at 1024x1024 with cfg (batch 2): (M, K, N, linears per UNet call, producer)
SDXL = [
    (8192, 640, 640, 10 * 6 + 5 * 2, "layernorm"),  # attn1 q k v o, attn2 q o; proj_in/out (level 1)
    (8192, 640, 5120, 10, "layernorm"),  # GEGLU proj
    (8192, 2560, 640, 10, "geglu"),  # ff out
    (2048, 1280, 1280, 60 * 6 + 6 * 2, "layernorm"),
    (2048, 1280, 10240, 60, "layernorm"),
    (2048, 5120, 1280, 60, "geglu"),
]


def producer(kind: str, x: torch.Tensor) -> torch.Tensor:
    if kind == "layernorm":
        return F.layer_norm(x, x.shape[-1:])
    a, gate = x.chunk(2, dim=-1)
    return a * F.gelu(gate)


def stock(x, w_t, w_scale, bias, dtype, fast_accum=False):
    x = torch.clamp(x, -FP8_MAX, FP8_MAX).reshape(-1, x.shape[-1]).to(FP8).contiguous()
    one = torch.ones((), device=x.device, dtype=torch.float32)
    return torch._scaled_mm(x, w_t, scale_a=one, scale_b=w_scale, bias=bias, out_dtype=dtype, use_fast_accum=fast_accum)


def tensor(x, w_t, w_scale, bias, dtype, two_level=False):
    amax = x.abs().amax(dim=-1).amax() if two_level else x.abs().amax()
    scale = (amax.float() / FP8_MAX).clamp(min=TINY)
    q = (x.float() / scale).clamp(-FP8_MAX, FP8_MAX).to(FP8).reshape(-1, x.shape[-1])
    return torch._scaled_mm(q, w_t, scale_a=scale, scale_b=w_scale, bias=bias, out_dtype=dtype, use_fast_accum=True)


def row(x, w_t, w_scale, bias, dtype):
    """Per-row scales applied after a tensor-wise GEMM (bf16 out), where inductor can fuse them."""
    x2 = x.reshape(-1, x.shape[-1])
    scale = (x2.abs().amax(dim=-1, keepdim=True).float() / FP8_MAX).clamp(min=TINY)
    q = (x2.float() / scale).clamp(-FP8_MAX, FP8_MAX).to(FP8)
    out = torch._scaled_mm(
        q, w_t, scale_a=torch.ones((), device=x.device), scale_b=w_scale, out_dtype=torch.bfloat16, use_fast_accum=True
    )
    out = out.float() * scale
    return (out + bias if bias is not None else out).to(dtype)


VARIANTS = {
    "fp16": lambda x, w, w_t, w_scale, bias: F.linear(x, w, bias),
    "stock": lambda x, w, w_t, w_scale, bias: stock(x, w_t, w_scale, bias, x.dtype),
    "stock-fast-accum": lambda x, w, w_t, w_scale, bias: stock(x, w_t, w_scale, bias, x.dtype, True),
    "tensor": lambda x, w, w_t, w_scale, bias: tensor(x, w_t, w_scale, bias, x.dtype),
    "tensor-2level": lambda x, w, w_t, w_scale, bias: tensor(x, w_t, w_scale, bias, x.dtype, True),
    "row": lambda x, w, w_t, w_scale, bias: row(x, w_t, w_scale, bias, x.dtype),
}


def layer(name: str, kind: str, residual: bool):
    """producer -> linear [-> + residual], as one function to compile."""
    linear = VARIANTS[name]

    def fn(x, res, w, w_t, w_scale, bias):
        out = linear(producer(kind, x), w, w_t, w_scale, bias)
        return out.reshape(res.shape) + res if residual else out

    return fn


def timed(fn, *args) -> float:
    """GPU time per call in µs: replayed as a CUDA graph, so Python's launch overhead is not counted."""
    from triton.testing import do_bench_cudagraph

    return do_bench_cudagraph(lambda: fn(*args), rep=200) * 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dtype", default="float16", choices=["float16", "bfloat16"])
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    dtype = getattr(torch, args.dtype)
    torch.manual_seed(0)
    rows, totals = [], {}
    for m, k, n, count, kind in SDXL:
        k_in = 2 * k if kind == "geglu" else k
        x = torch.randn(2, m // 2, k_in, device="cuda", dtype=dtype)
        res = torch.randn(2, m // 2, n, device="cuda", dtype=dtype)
        w = torch.randn(n, k, device="cuda", dtype=dtype) / k**0.5
        bias = torch.randn(n, device="cuda", dtype=dtype) * 0.1
        w_scale = w.abs().amax().float() / FP8_MAX
        w_t = (w.float() / w_scale).to(FP8).t()
        operands = (x, res, w, w_t, w_scale, bias)
        entry = {"m": m, "k": k, "n": n, "count": count, "producer": kind}
        with torch.no_grad():
            for residual in (False, True):
                torch._dynamo.reset()  # a fresh cache per shape: no recompile limit reached
                ref = layer("fp16", kind, residual)(*operands).float()
                for name in VARIANTS:
                    compiled = torch.compile(layer(name, kind, residual), dynamic=False)
                    out = compiled(*operands).float().reshape(ref.shape)
                    us = timed(compiled, *operands)
                    err = ((out - ref).norm() / ref.norm()).item()
                    key = name + ("+residual" if residual else "")
                    entry[key] = {"us": round(us, 2), "rel_err": round(err, 5)}
                    totals[key] = totals.get(key, 0.0) + us * count
        print(json.dumps(entry), flush=True)
        rows.append(entry)
    summary = {name: round(us / 1000, 3) for name, us in totals.items()}
    print("per UNet call (ms, linears only):", summary)
    result = {
        "device": torch.cuda.get_device_name(),
        "torch": torch.__version__,
        "dtype": args.dtype,
        "shapes": rows,
        "per_unet_call_ms": summary,
    }
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(result, indent=1) + "\n")


if __name__ == "__main__":
    main()
