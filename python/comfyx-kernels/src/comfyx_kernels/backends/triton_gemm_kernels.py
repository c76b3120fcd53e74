"""Triton GEMMs for Hopper and Ada, where no tensor core takes NVFP4 or MXFP8 directly.

- `nvfp4_weight_gemm_kernel`: out = x @ dequantize(W).T for bf16/fp16 activations x (M, K) and
  an NVFP4 weight W (N, K/2 packed, swizzled e4m3 block scales, float32 per-tensor scale). The
  weight tile is dequantized in registers (e2m1 · block scale is exact in bf16/fp16: 2 x 4
  significant bits) and never exists in memory unpacked; the per-tensor scale is applied to the
  float32 accumulator. SWAP configs compute the product transposed, out.T = W_tile @ x_tile.T,
  so the dequantized tile is the A operand (registers) of Hopper's wgmma and M, small for
  modulation and text layers, is the flexible N side of the instruction; the others compute
  x_tile @ W_tile.T. Autotuning picks, per shape. FP8_ACT (the opt-in W4A8 path) takes an
  e4m3 activation with its per-tensor scale and rounds e2m1 · block scale / 8 to e4m3 in
  registers: fp8 tensor cores at twice the bf16 rate, for that rounding and the activation's.
- `mxfp8_gemm_kernel`: out = a @ b.T for MXFP8 a (M, K) and b (N, K), two exact ways, picked
  by autotuning: PROMOTE configs make every 32-element K block one fp8 tensor-core product,
  added to the float32 accumulator times 2^(ea + eb) (the e8m0 scales of its rows and
  columns), two CUDA-core operations per accumulator element per block; the others scale the
  fp8 tiles into bf16 (e4m3 · 2^k is exact in bf16) and run bf16 tensor cores at half the fp8
  rate, without per-block work on the accumulator.

Autotuned per (M bucket, N, K); the config lists are short so that tuning the shapes of one
diffusion model takes seconds.
"""

from __future__ import annotations

import triton
import triton.language as tl

from .triton_blockscaled_kernels import (
    E2M1_TINY_INVERSE,
    W4A8_DIVISOR,
    e2m1_values_tiny,
    e8m0_values,
    swizzled_offset,
    unpack_codes,
    w4a8_weight,
)
from .triton_kernels import INTERPRETING, autotune


def _configs(shapes: list[tuple[int, ...]], flag: str) -> list[triton.Config]:
    return [
        triton.Config({"BN": bn, "BM": bm, "BK": bk, flag: f}, num_warps=w, num_stages=s)
        for bn, bm, bk, w, s, f in shapes
    ]


# (BN, BM, BK, warps, stages, SWAP); BN is the weight rows of a tile. Few configs: each one
# is a compile (seconds) plus a timing per new shape when a model first runs.
_SMALL_M = _configs(
    [
        (64, 16, 256, 4, 4, True),
        (128, 32, 128, 4, 4, True),
        # more, narrower programs: at M = 16 the 4-bit weight read is the floor (1.28x bf16's
        # time with the two above, H100)
        (32, 16, 256, 4, 4, True),
        (64, 16, 128, 4, 6, True),
    ],
    "SWAP",
)
_LARGE_M = _configs(
    [
        (128, 128, 64, 8, 4, True),
        (128, 256, 64, 8, 3, True),
        (256, 128, 64, 8, 3, True),
        (256, 128, 64, 8, 3, False),
    ],
    "SWAP",
)
# (BN, BM, BK, warps, stages, PROMOTE)
_MXFP8 = _configs(
    [
        (128, 128, 32, 8, 5, True),
        (128, 256, 32, 8, 4, True),
        (128, 128, 64, 8, 4, True),
        (256, 128, 64, 8, 3, False),
    ],
    "PROMOTE",
)
# The interpreter takes the first config of these (tests swap in the other variant).
INTERPRETED_NVFP4 = _configs([(32, 16, 64, 4, 1, True)], "SWAP")
INTERPRETED_MXFP8 = _configs([(32, 16, 64, 4, 1, True)], "PROMOTE")


def m_bucket(m: int) -> int:
    """Autotuning key for M: its power of two, capped (larger M tunes like 4096)."""
    return min(triton.next_power_of_2(max(m, 16)), 4096)


def _nvfp4_configs(configs, named_args, **kwargs):
    if INTERPRETING:
        return INTERPRETED_NVFP4
    small = named_args["M_BUCKET"] <= 64
    chosen = _SMALL_M if small else _LARGE_M
    if small:  # BM no larger than M rounded up
        chosen = [c for c in chosen if c.kwargs["BM"] <= named_args["M_BUCKET"]] or chosen[:1]
    return chosen


def _mxfp8_configs(configs, named_args, **kwargs):
    return INTERPRETED_MXFP8 if INTERPRETING else _MXFP8


@triton.jit
def _tile_ids(M, N, BM: tl.constexpr, BN: tl.constexpr, GROUP: tl.constexpr):
    # Grouped launch order: GROUP consecutive programs share weight tiles in L2.
    pid = tl.program_id(0)
    tiles_m, tiles_n = tl.cdiv(M, BM), tl.cdiv(N, BN)
    per_group = GROUP * tiles_m
    first_n = (pid // per_group) * GROUP
    group_size = tl.minimum(tiles_n - first_n, GROUP)
    pid_n = first_n + (pid % per_group) % group_size
    pid_m = (pid % per_group) // group_size
    return pid_m, pid_n


@autotune(
    configs=_LARGE_M + _SMALL_M,
    key=["M_BUCKET", "N", "K"],
    prune_configs_by={"early_config_prune": _nvfp4_configs},
)
@triton.jit
def nvfp4_weight_gemm_kernel(
    x_ptr,
    w_ptr,
    s_ptr,
    pts_ptr,
    xs_ptr,
    bias_ptr,
    out_ptr,
    M,
    N,
    K,
    stride_xm,
    stride_om,
    scale_cols_padded,
    M_BUCKET,
    HAS_BIAS: tl.constexpr,
    HI_FIRST: tl.constexpr,
    BN: tl.constexpr,
    BM: tl.constexpr,
    BK: tl.constexpr,
    SWAP: tl.constexpr,
    FP8_ACT: tl.constexpr,
):
    pid_m, pid_n = _tile_ids(M, N, BM, BN, 8)
    rn = pid_n * BN + tl.arange(0, BN)
    rm = pid_m * BM + tl.arange(0, BM)
    rk = tl.arange(0, BK)
    rkp = tl.arange(0, BK // 2)
    rks = tl.arange(0, BK // 16)
    w_ptrs = w_ptr + rn[:, None].to(tl.int64) * (K // 2) + rkp[None, :]
    x_rows = rm.to(tl.int64) * stride_xm
    acc = tl.zeros((BN, BM) if SWAP else (BM, BN), dtype=tl.float32)
    for k in range(0, K, BK):
        packed = tl.load(w_ptrs, mask=(rn < N)[:, None] & (k // 2 + rkp < K // 2)[None, :], other=0)
        kb = k // 16 + rks
        s_mask = (rn < N)[:, None] & (kb < K // 16)[None, :]
        s_offsets = swizzled_offset(rn[:, None], kb[None, :], scale_cols_padded)
        scales = tl.load(s_ptr + s_offsets, mask=s_mask, other=0.0).to(tl.float32)
        # 2^-14 · e2m1 times 2^14 · block scale (both exact): the 2^14 costs one multiply per
        # block instead of one per weight element.
        values = tl.reshape(e2m1_values_tiny(unpack_codes(packed, HI_FIRST)), (BN, BK // 16, 16))
        w = tl.reshape(values * (scales * E2M1_TINY_INVERSE)[:, :, None], (BN, BK))
        # FP8_ACT: x is e4m3, and e2m1 · scale / 8 (at most 336) is rounded to e4m3 for the
        # fp8 tensor cores (nvfp4_to_fp8's rule); else the dequantized weight, exact in x's
        # bf16 / fp16.
        w = w4a8_weight(w) if FP8_ACT else w.to(x_ptr.dtype.element_ty)
        if SWAP:  # x.T tile (BK, BM)
            x_mask = (rm < M)[None, :] & (k + rk < K)[:, None]
            x_t = tl.load(x_ptr + x_rows[None, :] + (k + rk)[:, None], mask=x_mask, other=0.0)
            acc = tl.dot(w, x_t, acc)
        else:
            x_mask = (rm < M)[:, None] & (k + rk < K)[None, :]
            x = tl.load(x_ptr + x_rows[:, None] + (k + rk)[None, :], mask=x_mask, other=0.0)
            acc = tl.dot(x, tl.trans(w), acc)
        w_ptrs += BK // 2
    if FP8_ACT:
        out = acc * (tl.load(pts_ptr) * W4A8_DIVISOR * tl.load(xs_ptr))
    else:
        out = acc * tl.load(pts_ptr)
    if SWAP:
        if HAS_BIAS:
            out += tl.load(bias_ptr + rn, mask=rn < N, other=0.0).to(tl.float32)[:, None]
        out_offsets = rm[None, :].to(tl.int64) * stride_om + rn[:, None]
        mask = (rn < N)[:, None] & (rm < M)[None, :]
    else:
        if HAS_BIAS:
            out += tl.load(bias_ptr + rn, mask=rn < N, other=0.0).to(tl.float32)[None, :]
        out_offsets = rm[:, None].to(tl.int64) * stride_om + rn[None, :]
        mask = (rm < M)[:, None] & (rn < N)[None, :]
    tl.store(out_ptr + out_offsets, out.to(out_ptr.dtype.element_ty), mask)


@triton.jit
def _mxfp8_promoted_step(a_ptr, b_ptr, sa_ptr, sb_ptr, acc, rm, rn, k, M, N, K, sa_cols, sb_cols,
                         BK: tl.constexpr):  # fmt: skip
    """acc + Σ over the 32-element blocks of [k, k + BK): fp8 product · 2^(ea + eb)."""
    rk = tl.arange(0, 32)
    for j in tl.static_range(BK // 32):
        kk = k + j * 32
        k_mask = (kk + rk < K)[None, :]
        a_offsets = rm[:, None].to(tl.int64) * K + (kk + rk)[None, :]
        b_offsets = rn[:, None].to(tl.int64) * K + (kk + rk)[None, :]
        a = tl.load(a_ptr + a_offsets, mask=(rm < M)[:, None] & k_mask, other=0.0)
        b = tl.load(b_ptr + b_offsets, mask=(rn < N)[:, None] & k_mask, other=0.0)
        # Past K (a partial last step) a and b load zeros: any in-bounds scale will do.
        block = tl.minimum(kk // 32, K // 32 - 1)
        sa = tl.load(sa_ptr + swizzled_offset(rm, block, sa_cols), rm < M, 0)
        sb = tl.load(sb_ptr + swizzled_offset(rn, block, sb_cols), rn < N, 0)
        acc += tl.dot(a, tl.trans(b)) * (e8m0_values(sa)[:, None] * e8m0_values(sb)[None, :])
    return acc


@triton.jit
def _mxfp8_tile_bf16(q_ptr, s_ptr, rows, k, R, K, s_cols, BR: tl.constexpr, BK: tl.constexpr):
    """Rows `rows`, columns [k, k + BK) of an MXFP8 matrix, scaled exactly into bf16."""
    rk = k + tl.arange(0, BK)
    mask = (rows < R)[:, None] & (rk < K)[None, :]
    q = tl.load(q_ptr + rows[:, None].to(tl.int64) * K + rk[None, :], mask=mask, other=0.0)
    kb = k // 32 + tl.arange(0, BK // 32)
    s_mask = (rows < R)[:, None] & (kb < K // 32)[None, :]
    codes = tl.load(s_ptr + swizzled_offset(rows[:, None], kb[None, :], s_cols), s_mask, 0)
    scaled = tl.reshape(q.to(tl.float32), (BR, BK // 32, 32)) * e8m0_values(codes)[:, :, None]
    return tl.reshape(scaled, (BR, BK)).to(tl.bfloat16)


@autotune(
    configs=_MXFP8,
    key=["M_BUCKET", "N", "K"],
    prune_configs_by={"early_config_prune": _mxfp8_configs},
)
@triton.jit
def mxfp8_gemm_kernel(
    a_ptr,
    b_ptr,
    sa_ptr,
    sb_ptr,
    bias_ptr,
    out_ptr,
    M,
    N,
    K,
    stride_om,
    sa_cols_padded,
    sb_cols_padded,
    M_BUCKET,
    HAS_BIAS: tl.constexpr,
    BN: tl.constexpr,
    BM: tl.constexpr,
    BK: tl.constexpr,
    PROMOTE: tl.constexpr,
):
    pid_m, pid_n = _tile_ids(M, N, BM, BN, 8)
    rm = pid_m * BM + tl.arange(0, BM)
    rn = pid_n * BN + tl.arange(0, BN)
    acc = tl.zeros((BM, BN), dtype=tl.float32)
    for k in range(0, K, BK):
        if PROMOTE:
            acc = _mxfp8_promoted_step(a_ptr, b_ptr, sa_ptr, sb_ptr, acc, rm, rn, k, M, N, K,
                                       sa_cols_padded, sb_cols_padded, BK)  # fmt: skip
        else:
            a = _mxfp8_tile_bf16(a_ptr, sa_ptr, rm, k, M, K, sa_cols_padded, BM, BK)
            b = _mxfp8_tile_bf16(b_ptr, sb_ptr, rn, k, N, K, sb_cols_padded, BN, BK)
            acc = tl.dot(a, tl.trans(b), acc)
    if HAS_BIAS:
        acc += tl.load(bias_ptr + rn, mask=rn < N, other=0.0).to(tl.float32)[None, :]
    out_ptrs = out_ptr + rm[:, None].to(tl.int64) * stride_om + rn[None, :]
    mask = (rm < M)[:, None] & (rn < N)[None, :]
    tl.store(out_ptrs, acc.to(out_ptr.dtype.element_ty), mask)
