// Host entry points of the CUDA kernels, bound to Python in module.cpp. Pointers are device
// addresses; every size and stride is in elements; `stream` is a cudaStream_t.
#pragma once

#include <cstdint>

namespace comfyx {

void quantize_fp8(std::uintptr_t x, std::uintptr_t scale, std::uintptr_t out, std::int64_t n,
                  int float_type, int fp8_type, std::uintptr_t stream);

void dequantize_fp8(std::uintptr_t x, std::uintptr_t scale, std::uintptr_t out, std::int64_t n,
                    int fp8_type, int float_type, std::uintptr_t stream);

// Most blocks the one-pass dynamic quantize may launch on `device` (size of its partials).
int dynamic_quantize_max_blocks(int device);

void quantize_fp8_dynamic(std::uintptr_t x, std::uintptr_t partials, int partials_capacity,
                          std::uintptr_t scale, std::uintptr_t out, std::int64_t n,
                          int float_type, int fp8_type, int device, std::uintptr_t stream);

// NVFP4: x (rows, cols; cols a multiple of 16, 16-byte aligned) → packed e2m1 codes q
// (rows, cols / 2) and e4m3 block scales in cuBLAS's swizzled layout (scale_cols_padded columns).
void quantize_nvfp4(std::uintptr_t x, std::uintptr_t per_tensor_scale, std::uintptr_t q,
                    std::uintptr_t scales, std::int64_t rows, std::int64_t cols,
                    std::int64_t scale_cols_padded, int float_type, bool hi_first,
                    std::uintptr_t stream);

// One tensor of a RoPE call, seen as (batch, seq, heads, dim) with any strides; `heads` is
// the axis the frequencies may broadcast over (freqs_heads_stride == 0).
struct RopeTensor {
  std::uintptr_t x, out;
  std::int64_t batch, seq, heads;
  std::int64_t x_strides[4], out_strides[4];       // batch, seq, heads, dim
  std::int64_t freqs_strides[3];                   // batch, seq, heads; pairs are contiguous
};

// Applies RoPE to `count` (1 or 2) tensors in one launch. `vectorized` needs dim % 8 == 0,
// unit dim stride, 16-byte aligned rows and freqs; otherwise one thread per pair.
void rope(const RopeTensor* tensors, int count, std::uintptr_t freqs, std::int64_t dim,
          int float_type, bool vectorized, int heads_per_thread, std::uintptr_t stream);

}  // namespace comfyx
