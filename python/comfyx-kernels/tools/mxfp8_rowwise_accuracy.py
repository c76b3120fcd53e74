"""How much the row-wise rewrite of MXFP8 (mxfp8_to_fp8_rowwise, the sm_89/sm_90 GEMM route of
scaled_mm_mxfp8 from 64 rows on) changes a GEMM, on the CPU, for realistic operands: Gaussian
weights times Gaussian, Student-t and outlier-channel activations.

Per case: the share of nonzero elements that lose bits in the rewrite (A = activation, B =
weight) and that flush to 0; the relative error (Frobenius) of the rewritten operands' product
against the exact MXFP8 product, next to the MXFP8 product's own error against the unquantized
product and the largest elementwise error over the largest output. All products in float64, so
the figures are the rewrite's alone (the GEMM's bf16 output adds ~2^-9 relative per element).

Usage: python python/comfyx-kernels/tools/mxfp8_rowwise_accuracy.py [--m 1024 --k 3072 --n 3072]
"""

from __future__ import annotations

import argparse
from collections.abc import Callable

import torch

import comfyx_kernels as cx
from comfyx_kernels.backends.eager_blockscaled import dequantize_mxfp8_exact


def outlier_channels(x: torch.Tensor, factor: float, count: int = 8) -> torch.Tensor:
    """x with `count` fixed channels (columns) times `factor`, as in transformer activations."""
    x = x.clone()
    x[:, torch.randperm(x.shape[1], generator=torch.Generator().manual_seed(1))[:count]] *= factor
    return x


def student_t(m: int, k: int, dof: float = 3.0) -> torch.Tensor:
    return torch.distributions.StudentT(dof).sample((m, k))


ACTIVATIONS: dict[str, Callable[[int, int], torch.Tensor]] = {
    "gaussian": torch.randn,
    "student-t (3 dof)": student_t,
    "gaussian, 8 channels x30": lambda m, k: outlier_channels(torch.randn(m, k), 30.0),
    "gaussian, 8 channels x300": lambda m, k: outlier_channels(torch.randn(m, k), 300.0),
    # a stress case: a 2^12 gap flushes most of a row's other elements' low bits
    "gaussian, 8 channels x4096": lambda m, k: outlier_channels(torch.randn(m, k), 4096.0),
    "student-t, 8 channels x30": lambda m, k: outlier_channels(student_t(m, k), 30.0),
}


def rowwise_exact(q: torch.Tensor, scales: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The rewritten operand in float64 (e4m3 · row scale) and its share of lost bits / flushes."""
    q2, row_scale = cx.mxfp8_to_fp8_rowwise(q, scales, backend="eager")
    exact = dequantize_mxfp8_exact(q, scales)
    rewritten = q2.double() * row_scale.double()[:, None]
    nonzero = exact != 0
    lost = (rewritten != exact) & nonzero
    flushed = (rewritten == 0) & nonzero
    shares = torch.tensor([lost.sum() / nonzero.sum(), flushed.sum() / nonzero.sum()])
    return rewritten, shares.double()


def relative(actual: torch.Tensor, reference: torch.Tensor) -> float:
    return float((actual - reference).norm() / reference.norm())


def study(m: int, k: int, n: int) -> list[dict[str, float | str]]:
    torch.manual_seed(0)
    w = torch.randn(n, k) / k**0.5
    qw, sw = cx.quantize_mxfp8(w, backend="eager")
    w_mx = dequantize_mxfp8_exact(qw, sw)
    w_rows, w_shares = rowwise_exact(qw, sw)
    rows = []
    for name, make in ACTIVATIONS.items():
        x = make(m, k)
        qx, sx = cx.quantize_mxfp8(x, backend="eager")
        x_mx = dequantize_mxfp8_exact(qx, sx)
        x_rows, x_shares = rowwise_exact(qx, sx)
        unquantized, mx, rowwise = x.double() @ w.double().T, x_mx @ w_mx.T, x_rows @ w_rows.T
        rows.append({
            "activation": name,
            "A lost bits": float(x_shares[0]),
            "A flushed": float(x_shares[1]),
            "B lost bits": float(w_shares[0]),
            "B flushed": float(w_shares[1]),
            "rowwise vs MX": relative(rowwise, mx),
            "max |rowwise - MX| / max |MX|": float((rowwise - mx).abs().max() / mx.abs().max()),
            "MX vs unquantized": relative(mx, unquantized),
        })  # fmt: skip
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--m", type=int, default=1024)
    parser.add_argument("--k", type=int, default=3072)
    parser.add_argument("--n", type=int, default=3072)
    args = parser.parse_args()
    rows = study(args.m, args.k, args.n)
    print(f"M={args.m} K={args.k} N={args.n}, weights N(0, 1/K)")
    print("| " + " | ".join(rows[0]) + " |")
    print("|" + "---|" * len(rows[0]))
    for row in rows:
        cells = [v if isinstance(v, str) else f"{v:.2e}" for v in row.values()]
        print("| " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
