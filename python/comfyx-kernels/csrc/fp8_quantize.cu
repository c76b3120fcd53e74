// Per-tensor fp8 quantize / dequantize and one-pass dynamic (amax + quantize) quantize.
//
// Each thread owns chunks of 16 elements: 16-byte vector loads and one 16-byte fp8 store when
// the chunk is whole, element by element for the tail (numel % 16 != 0 is handled, never read
// or written past the end). Math: fp32 IEEE divide, saturate to the largest finite value
// (NaN stays NaN), round to nearest even — the same as the eager backend, bit for bit, with
// the divide mostly replaced by two multiplies (QuotientToFp8, fp8_quotient.cuh).
#include <cooperative_groups.h>

#include <algorithm>

#include "common.cuh"
#include "fp8_quotient.cuh"
#include "kernels.h"

namespace comfyx {
namespace {

constexpr int kChunk = 16;  // elements per chunk
constexpr int kThreads = 256;

// Raw storage of one chunk of input: 16 elements of T as 16-byte words.
template <typename T>
struct Chunk {
  static constexpr int kWords = kChunk * sizeof(T) / 16;
  uint4 words[kWords];

  __device__ __forceinline__ void load(const T* source) {
    const uint4* from = reinterpret_cast<const uint4*>(source);
#pragma unroll
    for (int i = 0; i < kWords; ++i) words[i] = __ldg(from + i);
  }
  __device__ __forceinline__ void load_tail(const T* source, int count) {
    T* values = reinterpret_cast<T*>(words);
#pragma unroll
    for (int i = 0; i < kChunk; ++i) values[i] = i < count ? source[i] : from_float<T>(0.0f);
  }
  __device__ __forceinline__ float get(int i) const {
    return to_float(reinterpret_cast<const T*>(words)[i]);
  }
};

// max that keeps NaN (like torch.amax), so a NaN input gives a NaN scale on every backend.
__device__ __forceinline__ float nan_max(float a, float b) {
  float result;
  asm("max.NaN.f32 %0, %1, %2;" : "=f"(result) : "f"(a), "f"(b));
  return result;
}

template <typename T>
__device__ __forceinline__ float chunk_amax(const Chunk<T>& chunk) {
  float amax = 0.0f;
#pragma unroll
  for (int i = 0; i < kChunk; ++i) amax = nan_max(amax, fabsf(chunk.get(i)));
  return amax;
}

// Quantizes a loaded chunk and stores `count` fp8 values (16 as one vector store). Every
// array index is a compile-time constant so nothing spills to local memory.
template <typename T, __nv_fp8_interpretation_t K>
__device__ __forceinline__ void store_quantized(const Chunk<T>& chunk, const QuotientToFp8<K>& quotient,
                                                __nv_fp8_storage_t* out, int count) {
  uint32_t words[4];
#pragma unroll
  for (int j = 0; j < 4; ++j) {
    words[j] = quotient(chunk.get(4 * j), chunk.get(4 * j + 1), chunk.get(4 * j + 2),
                        chunk.get(4 * j + 3));
  }
  if (count == kChunk) {
    *reinterpret_cast<uint4*>(out) = make_uint4(words[0], words[1], words[2], words[3]);
    return;
  }
#pragma unroll
  for (int i = 0; i < kChunk; ++i) {
    if (i < count) out[i] = __nv_fp8_storage_t(words[i / 4] >> (8 * (i % 4)));
  }
}

template <typename T, __nv_fp8_interpretation_t K>
__device__ __forceinline__ void quantize_chunk(const T* x, __nv_fp8_storage_t* out, int64_t n,
                                               int64_t chunk_index, const QuotientToFp8<K>& quotient) {
  const int64_t start = chunk_index * kChunk;
  if (start >= n) return;
  const int count = n - start >= kChunk ? kChunk : int(n - start);
  Chunk<T> chunk;
  if (count == kChunk) chunk.load(x + start); else chunk.load_tail(x + start, count);
  store_quantized(chunk, quotient, out + start, count);
}

template <typename T, __nv_fp8_interpretation_t K>
__global__ void __launch_bounds__(kThreads) quantize_kernel(const T* __restrict__ x,
                                                            const float* __restrict__ scale,
                                                            __nv_fp8_storage_t* __restrict__ out,
                                                            int64_t n) {
  const int64_t chunk = int64_t(blockIdx.x) * kThreads + threadIdx.x;
  quantize_chunk(x, out, n, chunk, QuotientToFp8<K>(__ldg(scale)));
}

template <typename T>
__global__ void __launch_bounds__(kThreads) dequantize_kernel(
    const __nv_fp8_storage_t* __restrict__ x, const float* __restrict__ scale,
    T* __restrict__ out, int64_t n, __nv_fp8_interpretation_t kind) {
  const int64_t start = (int64_t(blockIdx.x) * kThreads + threadIdx.x) * kChunk;
  if (start >= n) return;
  const int count = n - start >= kChunk ? kChunk : int(n - start);
  // The scale is rounded to the output type first, as eager's x.to(out) * scale.to(out);
  // the float product of two such values is exact, so one rounding gives the same result.
  const float s = to_float(from_float<T>(__ldg(scale)));
  uint4 packed = make_uint4(0, 0, 0, 0);
  if (count == kChunk) {
    packed = __ldg(reinterpret_cast<const uint4*>(x + start));
  } else {
    uint32_t* words = reinterpret_cast<uint32_t*>(&packed);
#pragma unroll
    for (int i = 0; i < kChunk; ++i) {
      if (i < count) words[i / 4] |= uint32_t(x[start + i]) << (8 * (i % 4));
    }
  }
  const uint32_t* words = reinterpret_cast<const uint32_t*>(&packed);
  Chunk<T> values;
  T* value = reinterpret_cast<T*>(values.words);
#pragma unroll
  for (int i = 0; i < kChunk; i += 2) {  // two fp8 values per conversion instruction
    const auto pair = __nv_fp8x2_storage_t(words[i / 4] >> (8 * (i % 4)));
    const float2 v = __half22float2(__half2(__nv_cvt_fp8x2_to_halfraw2(pair, kind)));
    value[i] = from_float<T>(v.x * s);
    value[i + 1] = from_float<T>(v.y * s);
  }
  if (count == kChunk) {
    uint4* to = reinterpret_cast<uint4*>(out + start);
#pragma unroll
    for (int i = 0; i < Chunk<T>::kWords; ++i) to[i] = values.words[i];
    return;
  }
#pragma unroll
  for (int i = 0; i < kChunk; ++i) {
    if (i < count) out[start + i] = value[i];
  }
}

template <int kBlock>
__device__ __forceinline__ float block_max(float value) {
  __shared__ float warp_max[kBlock / 32];
#pragma unroll
  for (int offset = 16; offset > 0; offset /= 2) {
    value = nan_max(value, __shfl_xor_sync(0xffffffffu, value, offset));
  }
  if (threadIdx.x % 32 == 0) warp_max[threadIdx.x / 32] = value;
  __syncthreads();
  value = threadIdx.x < kBlock / 32 ? warp_max[threadIdx.x] : 0.0f;
  if (threadIdx.x < 32) {
#pragma unroll
    for (int offset = 16; offset > 0; offset /= 2) {
      value = nan_max(value, __shfl_xor_sync(0xffffffffu, value, offset));
    }
  }
  return value;  // valid in warp 0
}

// Grid-wide amax → scale: block maxima go to `partials`, one grid barrier, then every block
// reduces all partials itself. Block 0 writes the scale out.
template <int kBlock, __nv_fp8_interpretation_t K>
__device__ __forceinline__ float grid_scale(float amax, float* partials, float* scale_out) {
  amax = block_max<kBlock>(amax);
  if (threadIdx.x == 0) partials[blockIdx.x] = amax;
  cooperative_groups::this_grid().sync();
  __shared__ float shared_scale;
  if (threadIdx.x < 32) {
    float total = 0.0f;
    for (int b = threadIdx.x; b < gridDim.x; b += 32) total = nan_max(total, __ldcg(partials + b));
#pragma unroll
    for (int offset = 16; offset > 0; offset /= 2) {
      total = nan_max(total, __shfl_xor_sync(0xffffffffu, total, offset));
    }
    if (threadIdx.x == 0) {
      // float32 tiny as the floor: all-zero input gives zeros, not NaN.
      shared_scale = nan_max(__fdiv_rn(total, kFp8Max<K>), 1.17549435e-38f);
      if (blockIdx.x == 0) *scale_out = shared_scale;
    }
  }
  __syncthreads();
  return shared_scale;
}

// Fits on chip (shared memory of all multiprocessors): kStagedBlocksPerSM blocks per SM each
// stages its contiguous share of the input in shared memory while taking amax, so the input
// is read once and the quantize after the barrier reads nothing from device memory.
constexpr int kStagedThreads = 1024;
// Two blocks per SM (32 registers a thread): twice the warps to hide the latency of the
// quantize after the barrier, while shared memory holds the same share of the input.
constexpr int kStagedBlocksPerSM = 2;
// Chunks loaded before the first is used: 64 bytes per thread in flight, within 32 registers.
template <typename T>
constexpr int kStagedBatch = sizeof(T) == 4 ? 1 : 2;

template <typename T, __nv_fp8_interpretation_t K>
__global__ void __launch_bounds__(kStagedThreads, kStagedBlocksPerSM) dynamic_quantize_staged_kernel(
    const T* __restrict__ x, float* __restrict__ partials, float* __restrict__ scale_out,
    __nv_fp8_storage_t* __restrict__ out, int64_t n, int chunks_per_block) {
  extern __shared__ uint4 staged[];  // word w of local chunk c at staged[w * chunks_per_block + c]
  constexpr int kWords = Chunk<T>::kWords;
  // This block's share, indexed from its own start in 32-bit (fewer registers: within the
  // cap of 32 that two blocks of 1024 threads leave, nothing spills).
  const int64_t offset = int64_t(blockIdx.x) * chunks_per_block * kChunk;
  const int elements =
      int(std::max<int64_t>(std::min<int64_t>(n - offset, int64_t(chunks_per_block) * kChunk), 0));
  const int chunks = (elements + kChunk - 1) / kChunk;
  x += offset;
  out += offset;
  float amax = 0.0f;
  for (int base = threadIdx.x; base < chunks; base += kStagedBatch<T> * kStagedThreads) {
    Chunk<T> batch[kStagedBatch<T>];
#pragma unroll
    for (int u = 0; u < kStagedBatch<T>; ++u) {
      const int c = base + u * kStagedThreads;
      if (c >= chunks) continue;
      if ((c + 1) * kChunk <= elements) batch[u].load(x + c * kChunk);
      else batch[u].load_tail(x + c * kChunk, elements - c * kChunk);
    }
#pragma unroll
    for (int u = 0; u < kStagedBatch<T>; ++u) {
      const int c = base + u * kStagedThreads;
      if (c >= chunks) continue;
      amax = nan_max(amax, chunk_amax(batch[u]));
#pragma unroll
      for (int w = 0; w < kWords; ++w) staged[w * chunks_per_block + c] = batch[u].words[w];
    }
  }
  const QuotientToFp8<K> quotient(grid_scale<kStagedThreads, K>(amax, partials, scale_out));
  for (int c = threadIdx.x; c < chunks; c += kStagedThreads) {
    Chunk<T> chunk;
#pragma unroll
    for (int w = 0; w < kWords; ++w) chunk.words[w] = staged[w * chunks_per_block + c];
    store_quantized(chunk, quotient, out + c * kChunk, min(kChunk, elements - c * kChunk));
  }
}

// One launch, no host round trip: the grid (all blocks co-resident, cooperative launch)
// computes amax through per-block partials and one grid barrier, then quantizes. The first
// kHeld chunks of each thread stay in registers across the barrier; any further chunks are
// read again (mostly from L2) after it.
template <typename T, __nv_fp8_interpretation_t K, int kHeld>
__global__ void __launch_bounds__(kThreads, 4) dynamic_quantize_kernel(
    const T* __restrict__ x, float* __restrict__ partials, float* __restrict__ scale_out,
    __nv_fp8_storage_t* __restrict__ out, int64_t n) {
  namespace cg = cooperative_groups;
  const int64_t threads = int64_t(gridDim.x) * kThreads;
  const int64_t first = int64_t(blockIdx.x) * kThreads + threadIdx.x;
  const int64_t chunks = (n + kChunk - 1) / kChunk;
  Chunk<T> held[kHeld];
#pragma unroll
  for (int k = 0; k < kHeld; ++k) {
    const int64_t start = (first + k * threads) * kChunk;
    if (start + kChunk <= n) {
      held[k].load(x + start);
    } else if (start < n) {
      held[k].load_tail(x + start, int(n - start));
    }
  }
  float amax = 0.0f;
#pragma unroll
  for (int k = 0; k < kHeld; ++k) {
    if (first + k * threads < chunks) amax = nan_max(amax, chunk_amax(held[k]));
  }
  for (int64_t c = first + kHeld * threads; c < chunks; c += threads) {
    Chunk<T> chunk;
    const int64_t start = c * kChunk;
    if (start + kChunk <= n) chunk.load(x + start); else chunk.load_tail(x + start, int(n - start));
    amax = nan_max(amax, chunk_amax(chunk));
  }
  const QuotientToFp8<K> quotient(grid_scale<kThreads, K>(amax, partials, scale_out));
#pragma unroll
  for (int k = 0; k < kHeld; ++k) {
    const int64_t start = (first + k * threads) * kChunk;
    if (start < n) {
      store_quantized(held[k], quotient, out + start, n - start >= kChunk ? kChunk : int(n - start));
    }
  }
  for (int64_t c = first + kHeld * threads; c < chunks; c += threads) {
    quantize_chunk(x, out, n, c, quotient);
  }
}

// Registers held per thread: 64 bytes of input, which keeps 4+ blocks per multiprocessor.
template <typename T>
constexpr int kHeldChunks = sizeof(T) == 4 ? 2 : 4;

template <typename T, __nv_fp8_interpretation_t K>
int co_resident_blocks(int device) {
  static int cached[64] = {};
  if (device < 0 || device >= 64) throw std::invalid_argument("device index out of range");
  if (cached[device] == 0) {
    int per_sm = 0, sms = 0;
    check_cuda(cudaOccupancyMaxActiveBlocksPerMultiprocessor(
                   &per_sm, dynamic_quantize_kernel<T, K, kHeldChunks<T>>, kThreads, 0),
               "occupancy of dynamic quantize");
    check_cuda(cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, device),
               "multiprocessor count");
    cached[device] = per_sm * sms;
  }
  return cached[device];
}

int multiprocessors(int device) {
  static int cached[64] = {};
  if (device < 0 || device >= 64) throw std::invalid_argument("device index out of range");
  if (cached[device] == 0) {
    check_cuda(cudaDeviceGetAttribute(&cached[device], cudaDevAttrMultiProcessorCount, device),
               "multiprocessor count");
  }
  return cached[device];
}

// Largest shared-memory staging area one block of the staged kernel may use on `device` so
// that kStagedBlocksPerSM blocks fit on each multiprocessor (the limit is raised once).
template <typename T, __nv_fp8_interpretation_t K>
int64_t staging_capacity(int device) {
  static int64_t cached[64] = {};
  static bool known[64] = {};
  if (device < 0 || device >= 64) throw std::invalid_argument("device index out of range");
  if (!known[device]) {
    int per_sm = 0;
    check_cuda(cudaDeviceGetAttribute(&per_sm, cudaDevAttrMaxSharedMemoryPerMultiprocessor, device),
               "shared memory per multiprocessor");
    // Each block also needs its static shared memory and 1 KB the driver reserves.
    const int capacity = per_sm / kStagedBlocksPerSM - 2048;
    check_cuda(cudaFuncSetAttribute(dynamic_quantize_staged_kernel<T, K>,
                                    cudaFuncAttributeMaxDynamicSharedMemorySize, capacity),
               "raise shared memory limit");
    cached[device] = capacity;
    known[device] = true;
  }
  return cached[device];
}

int64_t chunk_blocks(int64_t n) {
  return (n + int64_t(kThreads) * kChunk - 1) / (int64_t(kThreads) * kChunk);
}

}  // namespace

void quantize_fp8(std::uintptr_t x, std::uintptr_t scale, std::uintptr_t out, std::int64_t n,
                  int float_type, int fp8_type, std::uintptr_t stream) {
  if (n == 0) return;
  dispatch_float(FloatType(float_type), [&]<typename T>() {
    dispatch_fp8(Fp8Type(fp8_type), [&]<__nv_fp8_interpretation_t K>() {
      quantize_kernel<T, K><<<chunk_blocks(n), kThreads, 0, reinterpret_cast<cudaStream_t>(stream)>>>(
          reinterpret_cast<const T*>(x), reinterpret_cast<const float*>(scale),
          reinterpret_cast<__nv_fp8_storage_t*>(out), n);
    });
  });
  check_cuda(cudaGetLastError(), "quantize_fp8 launch");
}

void dequantize_fp8(std::uintptr_t x, std::uintptr_t scale, std::uintptr_t out, std::int64_t n,
                    int fp8_type, int float_type, std::uintptr_t stream) {
  if (n == 0) return;
  const auto kind = fp8_interpretation(Fp8Type(fp8_type));
  dispatch_float(FloatType(float_type), [&]<typename T>() {
    dequantize_kernel<T><<<chunk_blocks(n), kThreads, 0, reinterpret_cast<cudaStream_t>(stream)>>>(
        reinterpret_cast<const __nv_fp8_storage_t*>(x), reinterpret_cast<const float*>(scale),
        reinterpret_cast<T*>(out), n, kind);
  });
  check_cuda(cudaGetLastError(), "dequantize_fp8 launch");
}

int dynamic_quantize_max_blocks(int device) {
  int sms = 0, threads_per_sm = 0;
  check_cuda(cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, device), "SM count");
  check_cuda(cudaDeviceGetAttribute(&threads_per_sm, cudaDevAttrMaxThreadsPerMultiProcessor, device),
             "threads per SM");
  return sms * (threads_per_sm / kThreads);  // no more blocks than can be co-resident
}

void quantize_fp8_dynamic(std::uintptr_t x, std::uintptr_t partials, int partials_capacity,
                          std::uintptr_t scale, std::uintptr_t out, std::int64_t n,
                          int float_type, int fp8_type, int device, std::uintptr_t stream) {
  auto* s = reinterpret_cast<cudaStream_t>(stream);
  dispatch_float(FloatType(float_type), [&]<typename T>() {
    dispatch_fp8(Fp8Type(fp8_type), [&]<__nv_fp8_interpretation_t K>() {
      auto* in = reinterpret_cast<const T*>(x);
      auto* p = reinterpret_cast<float*>(partials);
      auto* sc = reinterpret_cast<float*>(scale);
      auto* o = reinterpret_cast<__nv_fp8_storage_t*>(out);
      const int64_t chunks = (n + kChunk - 1) / kChunk;
      const int blocks_staged = int(std::min<int64_t>(
          std::min(multiprocessors(device) * kStagedBlocksPerSM, partials_capacity),
          std::max<int64_t>((chunks + kStagedThreads - 1) / kStagedThreads, 1)));
      const int64_t per_block_64 = (chunks + blocks_staged - 1) / blocks_staged;
      const int64_t staged_bytes = per_block_64 * int64_t(sizeof(Chunk<T>));
      if (n > 0 && staged_bytes <= staging_capacity<T, K>(device)) {
        int per_block = int(per_block_64);  // fits: bounded by the shared memory of one block
        void* args[] = {&in, &p, &sc, &o, &n, &per_block};
        check_cuda(cudaLaunchCooperativeKernel(
                       reinterpret_cast<void*>(dynamic_quantize_staged_kernel<T, K>),
                       dim3(unsigned(blocks_staged)), dim3(kStagedThreads), args,
                       size_t(staged_bytes), s),
                   "quantize_fp8_dynamic (staged) launch");
        return;
      }
      const int64_t blocks = std::min<int64_t>(
          std::max<int64_t>(chunk_blocks(n), 1),
          std::min<int64_t>(co_resident_blocks<T, K>(device), partials_capacity));
      void* args[] = {&in, &p, &sc, &o, &n};
      check_cuda(cudaLaunchCooperativeKernel(
                     reinterpret_cast<void*>(dynamic_quantize_kernel<T, K, kHeldChunks<T>>),
                     dim3(unsigned(blocks)), dim3(kThreads), args, 0, s),
                 "quantize_fp8_dynamic launch");
    });
  });
}

}  // namespace comfyx
