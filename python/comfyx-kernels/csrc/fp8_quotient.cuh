// fp8(x / scale) bit for bit as the IEEE divide gives it (eager's math), mostly without
// dividing: div.rn costs a reciprocal, a check and several FMAs per element, which bounded
// the dynamic quantize after its grid barrier.
//
// Why it is exact (tests/test_fp8_quotient.py checks this bracket with the CPU's IEEE float32
// over every 16-bit input and many scales; the GPU tests compare with eager near every fp8
// rounding midpoint):
// - Q = RN(x / s) is what eager converts; F = fp8 conversion (round to nearest even,
//   saturating to ±max, NaN stays NaN) is monotonic non-decreasing in its float input.
// - below ≤ 1/s ≤ above as real numbers: with inv = RN(1/s) (relative error ≤ u = 2^-24),
//   below = RN(inv·(1 − 2^-22)) ≤ (1/s)(1 + u)²(1 − 4u) < 1/s, and likewise
//   above ≥ (1/s)(1 − u)²(1 + 4u) > 1/s. This needs inv, below and above normal: scales in
//   [2^-100, 2^100] only (the range also keeps x·below away from float32 subnormals for any
//   quotient that can round to a non-zero fp8, so flush-to-zero could not matter). When s is
//   a power of two inv is exact and below = above = inv: then x·inv is the exact quotient.
// - x·below and x·above (exact reals) bracket x/s, and rounding to nearest is monotonic (also
//   into ±inf), so lo = RN(x·below) and hi = RN(x·above) bracket Q (for either sign of x;
//   ±0, ±inf and NaN give equal lo, hi and Q).
// - Hence F(lo) == F(hi) implies F(Q) == F(lo); signed zeros agree since lo, hi and Q carry
//   x's sign. Only when an fp8 rounding midpoint lies in [lo, hi] (for random
//   inputs, a few in a million) do the codes differ: those elements take the IEEE divide.
#pragma once

#include "common.cuh"

namespace comfyx {

// Kind is a template parameter: a run-time kind would issue every conversion twice
// (predicated e4m3 and e5m2 forms).
template <__nv_fp8_interpretation_t Kind>
class QuotientToFp8 {
 public:
  __device__ __forceinline__ explicit QuotientToFp8(float scale) : scale_(scale) {
    bracketed_ = scale >= 0x1p-100f && scale <= 0x1p100f;  // false for NaN
    const float inverse = __frcp_rn(scale);
    const bool exact = (__float_as_uint(scale) & 0x7fffffu) == 0;  // a power of two
    below_ = exact ? inverse : __fmul_rn(inverse, 1.0f - 0x1p-22f);
    above_ = exact ? inverse : __fmul_rn(inverse, 1.0f + 0x1p-22f);
  }

  // fp8 codes of a/s, b/s, c/s, d/s in bytes 0..3 of one word. (One branch per word: one per
  // chunk of 16 needs registers that the staged dynamic quantize does not have.)
  __device__ __forceinline__ uint32_t operator()(float a, float b, float c, float d) const {
    if (!bracketed_) {
      return pack(__fdiv_rn(a, scale_), __fdiv_rn(b, scale_), __fdiv_rn(c, scale_),
                  __fdiv_rn(d, scale_));
    }
    const uint32_t low = pack(__fmul_rn(a, below_), __fmul_rn(b, below_), __fmul_rn(c, below_),
                              __fmul_rn(d, below_));
    const uint32_t high = pack(__fmul_rn(a, above_), __fmul_rn(b, above_), __fmul_rn(c, above_),
                               __fmul_rn(d, above_));
    if (__builtin_expect(low == high, 1)) return low;
    const float values[4] = {a, b, c, d};
    uint32_t word = low;
#pragma unroll
    for (int i = 0; i < 4; ++i) {
      if (((low ^ high) >> (8 * i)) & 0xffu) {  // a midpoint in this element's bracket
        const uint32_t code = __nv_cvt_float_to_fp8(__fdiv_rn(values[i], scale_), __NV_SATFINITE, Kind);
        word = (word & ~(0xffu << (8 * i))) | (code << (8 * i));
      }
    }
    return word;
  }

 private:
  __device__ __forceinline__ static uint32_t pack(float a, float b, float c, float d) {
    const uint32_t low = __nv_cvt_float2_to_fp8x2(make_float2(a, b), __NV_SATFINITE, Kind);
    const uint32_t high = __nv_cvt_float2_to_fp8x2(make_float2(c, d), __NV_SATFINITE, Kind);
    return low | (high << 16);
  }

  float scale_, below_, above_;
  bool bracketed_;
};

}  // namespace comfyx
