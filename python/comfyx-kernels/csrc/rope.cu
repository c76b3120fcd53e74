// Interleaved RoPE: out[2k+i] = f[k][i][0] * x[2k] + f[k][i][1] * x[2k+1], f in float32.
//
// Vectorized path: a thread owns 8 consecutive elements (4 pairs) of one row position and
// walks `heads_per_thread` heads, loading the 4 pairs' frequencies once when they broadcast
// over heads. q and k go in one launch (blockIdx.y). Products and the sum are rounded
// separately (no fused multiply-add), as the eager backend computes them.
#include <algorithm>

#include "common.cuh"
#include "kernels.h"

namespace comfyx {
namespace {

constexpr int kThreads = 256;
constexpr int kElems = 8;  // per thread and head: 4 pairs

struct RopeLaunch {
  RopeTensor tensors[2];
  const float* freqs;
  int64_t dim;
};

__device__ __forceinline__ float rotate(float f0, float f1, float x0, float x1) {
  return __fadd_rn(__fmul_rn(f0, x0), __fmul_rn(f1, x1));
}

template <typename T>
struct Row8 {  // 8 elements of T as 16-byte words
  static constexpr int kWords = kElems * sizeof(T) / 16;
  uint4 words[kWords];
  __device__ __forceinline__ void load(const T* p) {
#pragma unroll
    for (int i = 0; i < kWords; ++i) words[i] = reinterpret_cast<const uint4*>(p)[i];
  }
  __device__ __forceinline__ void store(T* p) const {
#pragma unroll
    for (int i = 0; i < kWords; ++i) reinterpret_cast<uint4*>(p)[i] = words[i];
  }
  __device__ __forceinline__ T& operator[](int i) { return reinterpret_cast<T*>(words)[i]; }
};

struct Freqs4 {  // 4 pairs × 2×2 matrix
  float4 m[4];
  __device__ __forceinline__ void load(const float* p) {
#pragma unroll
    for (int i = 0; i < 4; ++i) m[i] = __ldg(reinterpret_cast<const float4*>(p) + i);
  }
};

template <typename T>
__device__ __forceinline__ void rotate_row(Row8<T>& row, const Freqs4& f) {
#pragma unroll
  for (int p = 0; p < 4; ++p) {
    const float x0 = to_float(row[2 * p]), x1 = to_float(row[2 * p + 1]);
    row[2 * p] = from_float<T>(rotate(f.m[p].x, f.m[p].y, x0, x1));
    row[2 * p + 1] = from_float<T>(rotate(f.m[p].z, f.m[p].w, x0, x1));
  }
}

template <typename T, int kHeadsPerThread, bool kFreqsPerHead>
__global__ void __launch_bounds__(kThreads) rope_vector_kernel(RopeLaunch launch) {
  const RopeTensor& t = launch.tensors[blockIdx.y];
  const int64_t chunks_per_row = launch.dim / kElems;
  const int64_t head_groups = (t.heads + kHeadsPerThread - 1) / kHeadsPerThread;
  int64_t index = int64_t(blockIdx.x) * kThreads + threadIdx.x;
  if (index >= t.batch * head_groups * t.seq * chunks_per_row) return;
  // Chunk fastest, then sequence position: neighbouring threads touch neighbouring memory.
  const int64_t chunk = index % chunks_per_row;
  index /= chunks_per_row;
  const int64_t s = index % t.seq;
  index /= t.seq;
  const int64_t group = index % head_groups;
  const int64_t b = index / head_groups;
  const int64_t head0 = group * kHeadsPerThread;
  const int heads = int(std::min<int64_t>(kHeadsPerThread, t.heads - head0));

  const T* x = reinterpret_cast<const T*>(t.x);
  T* out = reinterpret_cast<T*>(t.out);
  const int64_t x_base = b * t.x_strides[0] + s * t.x_strides[1] + chunk * kElems;
  const int64_t out_base = b * t.out_strides[0] + s * t.out_strides[1] + chunk * kElems;
  const float* freqs = launch.freqs + b * t.freqs_strides[0] + s * t.freqs_strides[1] +
                       chunk * (kElems / 2) * 4;

  Row8<T> rows[kHeadsPerThread];
#pragma unroll
  for (int h = 0; h < kHeadsPerThread; ++h) {
    if (h < heads) rows[h].load(x + x_base + (head0 + h) * t.x_strides[2]);
  }
  Freqs4 f;
  if (!kFreqsPerHead) f.load(freqs);
#pragma unroll
  for (int h = 0; h < kHeadsPerThread; ++h) {
    if (h < heads) {
      if (kFreqsPerHead) f.load(freqs + (head0 + h) * t.freqs_strides[2]);
      rotate_row(rows[h], f);
      rows[h].store(out + out_base + (head0 + h) * t.out_strides[2]);
    }
  }
}

// Any strides and any even dim: one thread per pair.
template <typename T>
__global__ void __launch_bounds__(kThreads) rope_scalar_kernel(RopeLaunch launch) {
  const RopeTensor& t = launch.tensors[blockIdx.y];
  const int64_t pairs = launch.dim / 2;
  int64_t index = int64_t(blockIdx.x) * kThreads + threadIdx.x;
  if (index >= t.batch * t.heads * t.seq * pairs) return;
  const int64_t p = index % pairs;
  index /= pairs;
  const int64_t s = index % t.seq;
  index /= t.seq;
  const int64_t h = index % t.heads;
  const int64_t b = index / t.heads;
  const T* x = reinterpret_cast<const T*>(t.x) + b * t.x_strides[0] + s * t.x_strides[1] +
               h * t.x_strides[2] + 2 * p * t.x_strides[3];
  T* out = reinterpret_cast<T*>(t.out) + b * t.out_strides[0] + s * t.out_strides[1] +
           h * t.out_strides[2] + 2 * p * t.out_strides[3];
  const float4 f = __ldg(reinterpret_cast<const float4*>(
      launch.freqs + b * t.freqs_strides[0] + s * t.freqs_strides[1] + h * t.freqs_strides[2]) + p);
  const float x0 = to_float(x[0]), x1 = to_float(x[t.x_strides[3]]);
  out[0] = from_float<T>(rotate(f.x, f.y, x0, x1));
  out[t.out_strides[3]] = from_float<T>(rotate(f.z, f.w, x0, x1));
}

template <typename T, int kHeadsPerThread, bool kFreqsPerHead>
void launch_vector(const RopeLaunch& launch, int count, cudaStream_t stream) {
  int64_t most = 0;
  for (int i = 0; i < count; ++i) {
    const RopeTensor& t = launch.tensors[i];
    const int64_t groups = (t.heads + kHeadsPerThread - 1) / kHeadsPerThread;
    most = std::max(most, t.batch * groups * t.seq * (launch.dim / kElems));
  }
  const dim3 grid(unsigned((most + kThreads - 1) / kThreads), unsigned(count));
  rope_vector_kernel<T, kHeadsPerThread, kFreqsPerHead><<<grid, kThreads, 0, stream>>>(launch);
}

}  // namespace

void rope(const RopeTensor* tensors, int count, std::uintptr_t freqs, std::int64_t dim,
          int float_type, bool vectorized, int heads_per_thread, std::uintptr_t stream) {
  if (count < 1 || count > 2) throw std::invalid_argument("rope takes 1 or 2 tensors");
  RopeLaunch launch{};
  for (int i = 0; i < count; ++i) launch.tensors[i] = tensors[i];
  launch.freqs = reinterpret_cast<const float*>(freqs);
  launch.dim = dim;
  int64_t most = 0;
  bool freqs_per_head = false;
  for (int i = 0; i < count; ++i) {
    const RopeTensor& t = tensors[i];
    most = std::max(most, t.batch * t.heads * t.seq * (dim / 2));
    freqs_per_head |= t.freqs_strides[2] != 0;
  }
  if (most == 0) return;
  auto* s = reinterpret_cast<cudaStream_t>(stream);
  dispatch_float(FloatType(float_type), [&]<typename T>() {
    if (!vectorized) {
      const dim3 grid(unsigned((most + kThreads - 1) / kThreads), unsigned(count));
      rope_scalar_kernel<T><<<grid, kThreads, 0, s>>>(launch);
    } else if (freqs_per_head) {
      launch_vector<T, 1, true>(launch, count, s);
    } else if (heads_per_thread >= 8) {
      launch_vector<T, 8, false>(launch, count, s);
    } else if (heads_per_thread >= 4) {
      launch_vector<T, 4, false>(launch, count, s);
    } else if (heads_per_thread >= 2) {
      launch_vector<T, 2, false>(launch, count, s);
    } else {
      launch_vector<T, 1, false>(launch, count, s);
    }
  });
  check_cuda(cudaGetLastError(), "rope launch");
}

}  // namespace comfyx
