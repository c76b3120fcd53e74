"""Triton GEMMs for Hopper and Ada, where no tensor core takes NVFP4 or MXFP8 directly.

- `nvfp4_weight_gemm_kernel`: out = x @ dequantize(W).T for bf16/fp16 activations x (M, K) and
  an NVFP4 weight W (N, K/2 packed, swizzled e4m3 block scales, float32 per-tensor scale). The
  weight tile is dequantized in registers (e2m1 · block scale is exact in bf16/fp16: 2 x 4
  significant bits) and never exists in memory unpacked; the per-tensor scale is applied to the
  float32 accumulator. The product is computed transposed, out.T = W_tile @ x_tile.T, so the
  dequantized tile is the A operand (registers) of Hopper's wgmma and M, which is small for
  diffusion models' modulation and text layers, is the flexible N side of the instruction.
- `mxfp8_gemm_kernel`: out = a @ b.T for MXFP8 a (M, K) and b (N, K): every 32-element
  K block is one fp8 tensor-core product, added to the float32 accumulator times
  2^(ea + eb) (the two e8m0 scales of its rows and columns).

Autotuned per (M bucket, N, K); the config lists are short so that tuning the shapes of one
diffusion model takes seconds.
"""

from __future__ import annotations

import triton
import triton.language as tl

from .triton_blockscaled_kernels import e2m1_values, e8m0_values, swizzled_offset, unpack_codes
from .triton_kernels import INTERPRETING


def _configs(shapes: list[tuple[int, int, int, int, int]]) -> list[triton.Config]:
    return [
        triton.Config({"BN": bn, "BM": bm, "BK": bk}, num_warps=w, num_stages=s)
        for bn, bm, bk, w, s in shapes
    ]


# (BN, BM, BK, warps, stages); BN is the weight rows of a tile (the wgmma M side).
_SMALL_M = _configs([(64, 16, 256, 4, 4), (128, 16, 128, 4, 4), (64, 32, 128, 4, 5)])
_LARGE_M = _configs(
    [
        (128, 128, 64, 8, 4),
        (128, 256, 64, 8, 3),
        (256, 128, 64, 8, 3),
        (128, 128, 128, 8, 3),
        (128, 64, 128, 4, 4),
    ]
)
_MXFP8 = _configs(
    [
        (128, 128, 32, 8, 5),
        (128, 256, 32, 8, 4),
        (256, 128, 32, 8, 4),
        (128, 128, 64, 8, 4),
    ]
)
# The interpreter takes the first config; a small tile keeps interpreted tests quick.
_INTERPRETED = _configs([(32, 16, 64, 4, 1)])


def m_bucket(m: int) -> int:
    """Autotuning key for M: its power of two, capped (larger M tunes like 4096)."""
    return min(triton.next_power_of_2(max(m, 16)), 4096)


def _nvfp4_configs(configs, named_args, **kwargs):
    if INTERPRETING:
        return _INTERPRETED
    small = named_args["M_BUCKET"] <= 64
    chosen = _SMALL_M if small else _LARGE_M
    if small:  # BM no larger than M rounded up
        chosen = [c for c in chosen if c.kwargs["BM"] <= named_args["M_BUCKET"]] or chosen[:1]
    return chosen


def _mxfp8_configs(configs, named_args, **kwargs):
    return _INTERPRETED if INTERPRETING else _MXFP8


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


@triton.autotune(
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
):
    pid_m, pid_n = _tile_ids(M, N, BM, BN, 8)
    rn = pid_n * BN + tl.arange(0, BN)
    rm = pid_m * BM + tl.arange(0, BM)
    rk = tl.arange(0, BK)
    rkp = tl.arange(0, BK // 2)
    rks = tl.arange(0, BK // 16)
    x_ptrs = x_ptr + rm[None, :].to(tl.int64) * stride_xm + rk[:, None]  # x.T tile (BK, BM)
    w_ptrs = w_ptr + rn[:, None].to(tl.int64) * (K // 2) + rkp[None, :]
    acc = tl.zeros((BN, BM), dtype=tl.float32)
    for k in range(0, K, BK):
        x_t = tl.load(x_ptrs, mask=(rm < M)[None, :] & (k + rk < K)[:, None], other=0.0)
        packed = tl.load(w_ptrs, mask=(rn < N)[:, None] & (k // 2 + rkp < K // 2)[None, :], other=0)
        kb = k // 16 + rks
        s_mask = (rn < N)[:, None] & (kb < K // 16)[None, :]
        s_offsets = swizzled_offset(rn[:, None], kb[None, :], scale_cols_padded)
        scales = tl.load(s_ptr + s_offsets, mask=s_mask, other=0.0).to(tl.float32)
        values = tl.reshape(e2m1_values(unpack_codes(packed, HI_FIRST)), (BN, BK // 16, 16))
        w = tl.reshape(values * scales[:, :, None], (BN, BK)).to(x_t.dtype)
        acc = tl.dot(w, x_t, acc)
        x_ptrs += BK
        w_ptrs += BK // 2
    out = acc * tl.load(pts_ptr)
    if HAS_BIAS:
        out += tl.load(bias_ptr + rn, mask=rn < N, other=0.0).to(tl.float32)[:, None]
    out_ptrs = out_ptr + rm[None, :].to(tl.int64) * stride_om + rn[:, None]
    mask = (rn < N)[:, None] & (rm < M)[None, :]
    tl.store(out_ptrs, out.to(out_ptr.dtype.element_ty), mask)


@triton.autotune(
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
):
    pid_m, pid_n = _tile_ids(M, N, BM, BN, 8)
    rm = pid_m * BM + tl.arange(0, BM)
    rn = pid_n * BN + tl.arange(0, BN)
    rk = tl.arange(0, 32)
    acc = tl.zeros((BM, BN), dtype=tl.float32)
    for k in range(0, K, BK):
        for j in tl.static_range(BK // 32):
            kk = k + j * 32
            k_mask = (kk + rk < K)[None, :]
            a_offsets = rm[:, None].to(tl.int64) * K + (kk + rk)[None, :]
            b_offsets = rn[:, None].to(tl.int64) * K + (kk + rk)[None, :]
            a = tl.load(a_ptr + a_offsets, mask=(rm < M)[:, None] & k_mask, other=0.0)
            b = tl.load(b_ptr + b_offsets, mask=(rn < N)[:, None] & k_mask, other=0.0)
            # Past K (a partial last step) a and b load zeros: any in-bounds scale will do.
            block = tl.minimum(kk // 32, K // 32 - 1)
            sa = tl.load(sa_ptr + swizzled_offset(rm, block, sa_cols_padded), rm < M, 0)
            sb = tl.load(sb_ptr + swizzled_offset(rn, block, sb_cols_padded), rn < N, 0)
            scale = e8m0_values(sa)[:, None] * e8m0_values(sb)[None, :]
            acc += tl.dot(a, tl.trans(b)) * scale
    if HAS_BIAS:
        acc += tl.load(bias_ptr + rn, mask=rn < N, other=0.0).to(tl.float32)[None, :]
    out_ptrs = out_ptr + rm[:, None].to(tl.int64) * stride_om + rn[None, :]
    mask = (rm < M)[:, None] & (rn < N)[None, :]
    tl.store(out_ptrs, acc.to(out_ptr.dtype.element_ty), mask)
