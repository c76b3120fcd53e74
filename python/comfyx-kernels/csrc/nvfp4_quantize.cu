// NVFP4 quantize: one thread per 16-element block. It loads the block with 16-byte vector loads,
// takes its amax on the float bits, writes the e4m3 block scale to the swizzled layout and the
// 16 e2m1 codes as one 8-byte store. The arithmetic is the Triton kernel's
// (backends/triton_blockscaled_kernels.py: load_nvfp4_blocks, quantize_nvfp4_kernel,
// e2m1_codes), so both are bit-equal to eager: the Triton kernel spends ~38 instructions per
// element in its tile reductions and reshapes and reached 66.7% of copy bandwidth on an H100
// (bench/results/kernels_fp4.quantize.json); here a block lives in one thread's registers.
#include <cstring>
#include <type_traits>

#include "common.cuh"
#include "kernels.h"

namespace comfyx {
namespace {

constexpr int kBlock = 16;
// The reciprocal's exact range (SAFE_SCALE_MIN / MAX in the Triton kernel): outside it a block's
// operands are both scaled by 2^±64 first, which keeps the quotient exact.
constexpr float kSafeMin = 0x1p-100f;
constexpr float kSafeMax = 0x1p120f;

// How a thread reads its block: evict-first (each byte is read once) or through L1. The two
// loads of one thread share their sectors, which evict-first may drop in between.
enum class Loads { kStreaming, kCached };

template <Loads L, typename V>
__device__ __forceinline__ V load16(const V* p) {
  if constexpr (L == Loads::kStreaming) {
    return __ldcs(p);
  } else {
    return __ldg(p);
  }
}

// A block of 16 elements: as float32 in v, and for 16-bit types also as the 8 loaded words.
template <Loads L>
__device__ __forceinline__ void load_block(const __nv_bfloat16* p, float (&v)[kBlock], uint32_t (&words)[8]) {
  const uint4* vec = reinterpret_cast<const uint4*>(p);
  const uint4 a = load16<L>(vec), b = load16<L>(vec + 1);
  const uint32_t w[8] = {a.x, a.y, a.z, a.w, b.x, b.y, b.z, b.w};
#pragma unroll
  for (int i = 0; i < 8; ++i) {  // bfloat16 is the top half of a float32
    words[i] = w[i];
    v[2 * i] = __uint_as_float(w[i] << 16);
    v[2 * i + 1] = __uint_as_float(w[i] & 0xffff0000u);
  }
}

template <Loads L>
__device__ __forceinline__ void load_block(const __half* p, float (&v)[kBlock], uint32_t (&words)[8]) {
  const uint4* vec = reinterpret_cast<const uint4*>(p);
  const uint4 a = load16<L>(vec), b = load16<L>(vec + 1);
  const uint32_t w[8] = {a.x, a.y, a.z, a.w, b.x, b.y, b.z, b.w};
#pragma unroll
  for (int i = 0; i < 8; ++i) {
    words[i] = w[i];
    __half2 pair;
    memcpy(&pair, &w[i], sizeof(pair));
    const float2 f = __half22float2(pair);
    v[2 * i] = f.x;
    v[2 * i + 1] = f.y;
  }
}

template <Loads L>
__device__ __forceinline__ void load_block(const float* p, float (&v)[kBlock], uint32_t (&)[8]) {
  const float4* vec = reinterpret_cast<const float4*>(p);
#pragma unroll
  for (int i = 0; i < 4; ++i) {
    const float4 f = load16<L>(vec + i);
    v[4 * i] = f.x;
    v[4 * i + 1] = f.y;
    v[4 * i + 2] = f.z;
    v[4 * i + 3] = f.w;
  }
}

// The block's amax as float32 bits, taken on the magnitudes' bits: NaN's bits are above
// infinity's, so a NaN propagates as in torch.amax. For 16-bit inputs `Packed` takes it on the
// loaded words, two elements per max (16-bit lanes of __vmaxu2), instead of on the 16 floats.
template <bool Packed, typename T>
__device__ __forceinline__ uint32_t block_amax_bits(const float (&v)[kBlock], const uint32_t (&words)[8]) {
  if constexpr (Packed && sizeof(T) == 2) {
    uint32_t m = words[0] & 0x7fff7fffu;
#pragma unroll
    for (int i = 1; i < 8; ++i) m = __vmaxu2(m, words[i] & 0x7fff7fffu);
    const uint32_t bits = max(m & 0xffffu, m >> 16);
    if constexpr (std::is_same_v<T, __nv_bfloat16>) {
      return bits << 16;
    } else {  // a half's magnitude as float32 bits (exact; a NaN stays NaN)
      return __float_as_uint(__half2float(__ushort_as_half(static_cast<unsigned short>(bits)))) & 0x7fffffffu;
    }
  } else {
    uint32_t amax_bits = 0;
#pragma unroll
    for (int i = 0; i < kBlock; ++i) amax_bits = max(amax_bits, __float_as_uint(v[i]) & 0x7fffffffu);
    return amax_bits;
  }
}

// float32 magnitude q (≥ 0, or NaN) → e2m1 code, saturated at 6, rounded to nearest even, with
// the sign bit of `x` (e2m1_codes in the Triton kernels, operation for operation).
__device__ __forceinline__ uint32_t e2m1_code(float q, float x) {
  const int32_t m = min(__float_as_int(q), 0x40C00000);
  const int32_t small = __float_as_int(__fadd_rn(__int_as_float(m), 4194304.0f)) - 0x4A800000;
  const int32_t normal = (m + ((m >> 22) & 1) + (-(126 << 23) + 0x1FFFFF)) >> 22;
  const uint32_t sign = (__float_as_uint(x) >> 28) & 8u;
  return uint32_t(m < 0x3F800000 ? small : normal) | sign;
}

// Offset of block scale (row, col) in cuBLAS's swizzled layout (swizzled_offset in Triton).
__device__ __forceinline__ int64_t swizzled_offset(int64_t row, int64_t col, int64_t padded_cols) {
  const int64_t tile = (row / 128) * (padded_cols / 4) + col / 4;
  return tile * 512 + (row % 32) * 16 + ((row % 128) / 32) * 4 + col % 4;
}

// The kernel's variants (bench/nvfp4_quantize_cuda_variants.cu times them): how it loads, where
// it takes the amax, threads per CTA. quantize_nvfp4 launches the defaults.
template <typename T, bool HiFirst, Loads L, bool PackedAmax, int Threads>
__global__ void __launch_bounds__(Threads)
    quantize_nvfp4_kernel(const T* __restrict__ x, const float* __restrict__ per_tensor_scale,
                          uint2* __restrict__ q, __nv_fp8_storage_t* __restrict__ scales,
                          int64_t rows, int64_t blocks_per_row, int64_t scale_cols_padded) {
  const int64_t block = int64_t(blockIdx.x) * Threads + threadIdx.x;
  const int64_t count = rows * blocks_per_row;
  if (block >= count) return;
  float v[kBlock];
  uint32_t loaded[8];
  load_block<L>(x + block * kBlock, v, loaded);
  const uint32_t amax_bits = block_amax_bits<PackedAmax, T>(v, loaded);
  const float pts = __ldg(per_tensor_scale);
  const float scale = __fdiv_rn(__fdiv_rn(__uint_as_float(amax_bits), 6.0f), pts);
  // saturated at 448 (a NaN stays NaN), then rounded to e4m3
  const __nv_fp8_storage_t scale_fp8 =
      __nv_cvt_float_to_fp8(scale > 448.0f ? 448.0f : scale, __NV_SATFINITE, __NV_E4M3);
  const float total =
      __fmul_rn(pts, __half2float(__half(__nv_cvt_fp8_to_halfraw(scale_fp8, __NV_E4M3))));
  int64_t row, col;
  if (count <= 0xffffffff) {  // a 64-bit division costs several times a 32-bit one
    const uint32_t b = uint32_t(block), per_row = uint32_t(blocks_per_row);
    row = b / per_row;
    col = b - uint32_t(row) * per_row;
  } else {
    row = block / blocks_per_row;
    col = block - row * blocks_per_row;
  }
  scales[swizzled_offset(row, col, scale_cols_padded)] = scale_fp8;

  uint32_t codes[kBlock];
  if (total >= kSafeMin && total <= kSafeMax) {  // |x| / total as its correctly rounded quotient
    const float inverse = __frcp_rn(total);
#pragma unroll
    for (int i = 0; i < kBlock; ++i) {
      const float magnitude = fabsf(v[i]);
      const float q0 = __fmul_rn(magnitude, inverse);
      const float quotient = __fmaf_rn(__fmaf_rn(-q0, total, magnitude), inverse, q0);
      codes[i] = e2m1_code(quotient, v[i]);
    }
  } else {  // zero (codes +0), NaN, or outside the reciprocal's exact range
    const bool zero = total == 0.0f;
    const float shift = total < kSafeMin ? 0x1p64f : (total > kSafeMax ? 0x1p-64f : 1.0f);
    const float safe = zero ? 1.0f : __fmul_rn(total, shift);
    const float inverse = __frcp_rn(safe);
#pragma unroll
    for (int i = 0; i < kBlock; ++i) {
      const float magnitude = __fmul_rn(fabsf(v[i]), shift);
      const float q0 = __fmul_rn(magnitude, inverse);
      const float quotient = __fmaf_rn(__fmaf_rn(-q0, safe, magnitude), inverse, q0);
      codes[i] = zero ? 0u : e2m1_code(quotient, v[i]);
    }
  }
  uint32_t words[2] = {0u, 0u};
#pragma unroll
  for (int i = 0; i < kBlock; i += 2) {  // byte i / 2 holds elements i and i + 1
    const uint32_t byte = HiFirst ? (codes[i] << 4) | codes[i + 1] : (codes[i + 1] << 4) | codes[i];
    words[i / 8] |= byte << (8 * ((i / 2) % 4));
  }
  __stcs(q + block, make_uint2(words[0], words[1]));
}

template <Loads L, bool PackedAmax, int Threads>
void launch_quantize_nvfp4(std::uintptr_t x, std::uintptr_t per_tensor_scale, std::uintptr_t q,
                           std::uintptr_t scales, std::int64_t rows, std::int64_t cols,
                           std::int64_t scale_cols_padded, int float_type, bool hi_first,
                           std::uintptr_t stream) {
  if (cols % kBlock) throw std::invalid_argument("quantize_nvfp4: columns must be a multiple of 16");
  const int64_t blocks = rows * (cols / kBlock);
  if (blocks == 0) return;
  const int64_t grid = (blocks + Threads - 1) / Threads;
  if (grid > 0x7fffffff) throw std::invalid_argument("quantize_nvfp4: input too large for one launch");
  dispatch_float(FloatType(float_type), [&]<typename T>() {
    auto launch = [&](auto kernel) {
      kernel<<<unsigned(grid), Threads, 0, reinterpret_cast<cudaStream_t>(stream)>>>(
          reinterpret_cast<const T*>(x), reinterpret_cast<const float*>(per_tensor_scale),
          reinterpret_cast<uint2*>(q), reinterpret_cast<__nv_fp8_storage_t*>(scales), rows,
          cols / kBlock, scale_cols_padded);
    };
    if (hi_first) {
      launch(quantize_nvfp4_kernel<T, true, L, PackedAmax, Threads>);
    } else {
      launch(quantize_nvfp4_kernel<T, false, L, PackedAmax, Threads>);
    }
  });
  check_cuda(cudaGetLastError(), "quantize_nvfp4 launch");
}

}  // namespace

void quantize_nvfp4(std::uintptr_t x, std::uintptr_t per_tensor_scale, std::uintptr_t q,
                    std::uintptr_t scales, std::int64_t rows, std::int64_t cols,
                    std::int64_t scale_cols_padded, int float_type, bool hi_first,
                    std::uintptr_t stream) {
  launch_quantize_nvfp4<Loads::kStreaming, true, 256>(x, per_tensor_scale, q, scales, rows, cols, scale_cols_padded,
                                   float_type, hi_first, stream);
}

}  // namespace comfyx
