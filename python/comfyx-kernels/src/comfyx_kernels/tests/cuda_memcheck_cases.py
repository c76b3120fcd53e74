"""Every CUDA kernel on awkward inputs, for `compute-sanitizer --tool memcheck python -m ...`.

Tails (numel % 16 != 0), tiny and empty tensors, unaligned views, NVFP4 block counts that
leave threads past the end, inputs next to fp8
rounding midpoints (the quantize's divide fallback), strided RoPE inputs, the scalar RoPE path
and in-place calls; each result is checked against the eager backend so the
run also fails on wrong values. Exits non-zero on any mismatch.
"""

from __future__ import annotations

import sys

import torch

import comfyx_kernels as cx
from comfyx_kernels.backends import eager, eager_blockscaled

from .helpers import near_midpoints


def check(name: str, actual: torch.Tensor, expected: torch.Tensor, exact: bool = True) -> bool:
    a, e = actual.float().cpu(), expected.float().cpu()
    ok = (
        torch.equal(a.nan_to_num(), e.nan_to_num())
        if exact
        else torch.allclose(a, e, rtol=1e-2, atol=1e-3)
    )
    print(f"{'ok  ' if ok else 'FAIL'} {name}")
    return ok


def main() -> int:
    torch.manual_seed(0)
    ok = True
    with cx.use_backend("cuda"):
        for n in (0, 1, 15, 17, 4099, 1 << 20 | 7):
            for dtype in (torch.float32, torch.float16, torch.bfloat16):
                x = torch.randn(n, device="cuda", dtype=dtype) * 100
                scale = torch.tensor(0.3, device="cuda")
                q = cx.quantize_per_tensor_fp8(x, scale)
                ok &= check(
                    f"quantize {n} {dtype}",
                    q,
                    eager.quantize_per_tensor_fp8(x, scale, torch.float8_e4m3fn),
                )
                d = cx.dequantize_per_tensor_fp8(q, scale, dtype)
                ok &= check(
                    f"dequantize {n} {dtype}", d, eager.dequantize_per_tensor_fp8(q, scale, dtype)
                )
                qd, sd = cx.quantize_fp8_dynamic(x, torch.float8_e5m2)
                qe, se = eager.quantize_fp8_dynamic(x, torch.float8_e5m2)
                ok &= check(f"dynamic {n} {dtype}", qd, qe) & check("dynamic scale", sd, se)
        for dtype in (torch.float32, torch.bfloat16):  # float32: too large to stage on chip
            x = torch.randn((1 << 23) + 7, device="cuda", dtype=dtype)
            qd, sd = cx.quantize_fp8_dynamic(x)
            qe, se = eager.quantize_fp8_dynamic(x, torch.float8_e4m3fn)
            ok &= check(f"dynamic large {dtype}", qd, qe) & check("dynamic large scale", sd, se)
        for fp8 in (torch.float8_e4m3fn, torch.float8_e5m2):  # the divide fallback, diverging
            x = near_midpoints(fp8, 0.37).cuda()
            scale = torch.tensor(0.37, device="cuda")
            ok &= check(
                f"quantize near midpoints {fp8}",
                cx.quantize_per_tensor_fp8(x, scale, fp8),
                eager.quantize_per_tensor_fp8(x, scale, fp8),
            )
            qd, sd = cx.quantize_fp8_dynamic(x, fp8)
            qe, se = eager.quantize_fp8_dynamic(x, fp8)
            ok &= check(f"dynamic near midpoints {fp8}", qd, qe) & check("its scale", sd, se)
        unaligned = torch.randn(4097, device="cuda", dtype=torch.bfloat16)[1:]
        ok &= check(
            "quantize unaligned view",
            cx.quantize_per_tensor_fp8(unaligned, scale),
            eager.quantize_per_tensor_fp8(unaligned, scale, torch.float8_e4m3fn),
        )

        # NVFP4: block counts that leave the last thread block partly past the end, a single block,
        # none, rows wider than one thread block
        for rows, cols in ((1, 16), (3, 48), (129, 272), (0, 32), (257, 4112)):
            for dtype in (torch.float32, torch.float16, torch.bfloat16):
                for hi_first in (True, False):
                    x = torch.randn(rows, cols, device="cuda", dtype=dtype) * 10
                    pts = torch.tensor(0.01, device="cuda")
                    q, s = cx.quantize_nvfp4(x, pts, hi_first=hi_first)
                    qe, se = eager_blockscaled.quantize_nvfp4(x, pts, hi_first=hi_first)
                    name = f"nvfp4 {rows}x{cols} {dtype} hi_first={hi_first}"
                    ok &= check(name, q, qe) & check(f"{name} scales", s, se)
        unaligned = torch.randn(65 * 64 + 1, device="cuda", dtype=torch.bfloat16)[1:].view(65, 64)
        q, s = cx.quantize_nvfp4(unaligned, pts)
        qe, se = eager_blockscaled.quantize_nvfp4(unaligned, pts)
        ok &= check("nvfp4 unaligned view", q, qe) & check("its scales", s, se)

        for layout in ("BHLD", "BLHD"):
            for dim in (64, 20):  # 20: scalar path (dim % 8 != 0)
                shape = (2, 3, 37, dim) if layout == "BHLD" else (2, 37, 3, dim)
                freqs_shape = (
                    (2, 1, 37, dim // 2, 2, 2) if layout == "BHLD" else (2, 37, 1, dim // 2, 2, 2)
                )
                freqs = torch.randn(freqs_shape, device="cuda")
                xq = torch.randn(shape, device="cuda", dtype=torch.bfloat16)
                xk = torch.randn(shape, device="cuda", dtype=torch.bfloat16)
                q, k = cx.apply_rope(xq, xk, freqs)
                ok &= check(f"rope {layout} {dim}", q, eager.apply_rope1(xq, freqs), exact=False)
                ok &= check(f"rope k {layout} {dim}", k, eager.apply_rope1(xk, freqs), exact=False)
                strided = xq.transpose(1, 2)  # non-contiguous view of the other layout
                s_freqs = freqs.transpose(1, 2)
                ok &= check(
                    f"rope strided {layout} {dim}",
                    cx.apply_rope1(strided, s_freqs),
                    eager.apply_rope1(strided, s_freqs),
                    exact=False,
                )
                expected = eager.apply_rope1(xq, freqs)
                cx.apply_rope1_(xq, freqs)
                ok &= check(f"rope in place {layout} {dim}", xq, expected, exact=False)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
