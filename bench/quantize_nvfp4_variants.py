"""Where the Triton NVFP4 quantize kernel's time goes (issue 15: >= 80% of copy bandwidth at 8192²;
where the CUDA extension is built, its kernel, csrc/nvfp4_quantize.cu, is the one users get).

One GPU, 8192² bf16: `qv`, the Triton kernel (backends/triton_blockscaled_kernels.py) with
two switches, RANGE (its tile-wide check for block scales outside the reciprocal's valid range,
with the exact division as fallback) and PACK (nibbles packed by tl.split, or by a sum over the
pair), over tile shapes and warps; `traffic`, the same loads and stores without the arithmetic,
the ceiling of this access pattern. Each variant's output is compared bit for bit with the
Triton kernel's. Prints and writes quantize_nvfp4_variants.json to $OUT (default /tmp).

    python3 bench/quantize_nvfp4_variants.py   (comfyx_kernels importable)
"""

import json
import os

import comfyx_kernels as cx
import torch
import triton
import triton.language as tl
from comfyx_kernels.backends.triton_blockscaled_kernels import (
    SAFE_SCALE_MAX,
    SAFE_SCALE_MIN,
    e2m1_codes,
    load_nvfp4_blocks,
    store_nvfp4_tile,
)
from comfyx_kernels.blockscaled import scale_shape
from kernels import copy_bandwidth_gbs


@triton.jit
def qv(
    x_ptr,
    pts_ptr,
    q_ptr,
    s_ptr,
    rows,
    cols,
    scale_cols_padded,
    BM: tl.constexpr,
    BK: tl.constexpr,
    RANGE: tl.constexpr,
    PACK: tl.constexpr,
):
    pid_m, pid_k = tl.program_id(0), tl.program_id(1)
    r, blocks, scale_fp8, total = load_nvfp4_blocks(x_ptr, pts_ptr, pid_m, pid_k, rows, cols, BM, BK)
    zero = total == 0.0
    safe = tl.where(zero, 1.0, total)[:, :, None]
    inverse = tl.math.div_rn(1.0, safe)
    q0 = blocks * inverse
    q = tl.fma(tl.fma(-q0, safe, blocks), inverse, q0)
    if RANGE == 1 and ((tl.min(safe) < SAFE_SCALE_MIN) | (tl.max(safe) > SAFE_SCALE_MAX)):
        q = tl.math.div_rn(blocks, safe)
    q = tl.where(zero[:, :, None], 0.0, q)
    if PACK == 0:
        codes = tl.reshape(e2m1_codes(tl.abs(q), q), (BM, BK // 2, 2))
        even, odd = tl.split(codes)
        packed = (even << 4) | odd
    else:
        codes = tl.reshape(e2m1_codes(tl.abs(q), q), (BM, BK // 2, 2))
        shift = tl.arange(0, 2)
        packed = tl.sum(codes << (4 - 4 * shift)[None, None, :], axis=2)
    store_nvfp4_tile(q_ptr, s_ptr, packed, scale_fp8, r, pid_k, rows, cols, scale_cols_padded, BK)


@triton.jit
def traffic(x_ptr, q_ptr, s_ptr, rows, cols, scale_cols_padded, BM: tl.constexpr, BK: tl.constexpr):
    """Same bytes, no math: the ceiling of this access pattern."""
    pid_m, pid_k = tl.program_id(0), tl.program_id(1)
    r = pid_m * BM + tl.arange(0, BM)
    c = pid_k * BK + tl.arange(0, BK)
    mask = (r < rows)[:, None] & (c < cols)[None, :]
    x = tl.load(x_ptr + r[:, None].to(tl.int64) * cols + c[None, :], mask=mask, other=0.0)
    b = tl.reshape(x.to(tl.int16, bitcast=True), (BM, BK // 2, 2))
    even, odd = tl.split(b)
    packed = (even ^ odd).to(tl.uint8)
    scales = tl.max(tl.reshape(packed, (BM, BK // 16, 8)), axis=2).to(tl.uint8)
    store_nvfp4_tile(
        q_ptr, s_ptr, packed, scales.to(tl.float8e4nv, bitcast=True), r, pid_k, rows, cols,
        scale_cols_padded, BK,
    )  # fmt: skip


def main() -> None:
    n = 8192
    torch.manual_seed(0)
    x = torch.randn(n, n, device="cuda", dtype=torch.bfloat16)
    pts = (x.abs().amax().float() / (448 * 6)).reshape(())
    ref_q, ref_s = cx.quantize_nvfp4(x, pts, backend="triton")
    shape = scale_shape(n, n // 16)
    q = torch.empty(n, n // 2, dtype=torch.uint8, device="cuda")
    s = torch.zeros(shape, dtype=torch.float8_e4m3fn, device="cuda")
    nbytes = 2 * n * n + n * n // 2 + n * n // 16
    copy = copy_bandwidth_gbs()
    out = {"copy_gbs": copy, "device": torch.cuda.get_device_name(), "rows": []}
    print("copy", round(copy), "GB/s", flush=True)

    def bench(fn) -> tuple[float, float]:
        fn()
        torch.cuda.synchronize()
        ms = triton.testing.do_bench_cudagraph(fn, rep=60)
        return 100 * nbytes / (ms * 1e-3) / 1e9 / copy, ms * 1e3

    pct, us = bench(lambda: cx.quantize_nvfp4(x, pts, backend="triton"))
    out["production"] = [pct, us]
    print("production", round(pct, 1), round(us, 1), flush=True)
    tiles = ((16, 128), (32, 128), (64, 128), (16, 256), (8, 512), (8, 128), (16, 64), (4, 256))
    for bm, bk in tiles:
        grid = (n // bm, n // bk)
        for w in (2, 4, 8):
            if not 4 <= bm * bk // (32 * w) <= 128:
                continue

            def traffic_call(bm=bm, bk=bk, w=w, grid=grid):
                traffic[grid](x, q, s, n, n, shape[1], BM=bm, BK=bk, num_warps=w)

            pct, us = bench(traffic_call)
            out["rows"].append({"kind": "traffic", "bm": bm, "bk": bk, "w": w, "pct": pct, "us": us})
            print("traffic", bm, bk, w, round(pct, 1), flush=True)
            for rng, pack in ((1, 0), (0, 0), (0, 1)):

                def variant(bm=bm, bk=bk, w=w, grid=grid, rng=rng, pack=pack):
                    qv[grid](x, pts, q, s, n, n, shape[1], BM=bm, BK=bk, RANGE=rng, PACK=pack,
                             num_warps=w)  # fmt: skip

                variant()
                torch.cuda.synchronize()
                same = torch.equal(q, ref_q) and torch.equal(s.view(torch.uint8), ref_s.view(torch.uint8))
                pct, us = bench(variant)
                row = {
                    "kind": "quant",
                    "bm": bm,
                    "bk": bk,
                    "w": w,
                    "range": rng,
                    "pack": pack,
                    "pct": pct,
                    "us": us,
                    "same": same,
                }
                out["rows"].append(row)
                print("quant", bm, bk, w, rng, pack, round(pct, 1), round(us, 1), same, flush=True)
    with open(os.path.join(os.environ.get("OUT", "/tmp"), "quantize_nvfp4_variants.json"), "w") as f:
        json.dump(out, f, indent=1)
    for row in sorted((r for r in out["rows"] if r["kind"] == "quant"), key=lambda r: -r["pct"])[:10]:
        print("BEST", row)


if __name__ == "__main__":
    main()
