// Times the CUDA NVFP4 quantize's variants (csrc/nvfp4_quantize.cu's template parameters: streaming or
// cached loads, the block amax on packed 16-bit pairs or on floats, threads per CTA) on one
// 8192 x 8192 bf16 input, each checked byte for byte against the reference variant (streaming loads,
// the amax on floats, 256 threads: the fourth GPU run's kernel), against a
// device-to-device copy's bandwidth as bench/kernels_fp4.py counts it (bytes read + written).
// No torch: one nvcc call, seconds to build.
//
//   nvcc -std=c++20 --expt-relaxed-constexpr -O3 -arch=sm_90a -I python/comfyx-kernels/csrc \
//     bench/nvfp4_quantize_cuda_variants.cu -o /tmp/nvfp4_variants && /tmp/nvfp4_variants
//
// Prints one JSON object: the copy bandwidth and, per variant, microseconds (median of 7 runs of
// 20 launches, rotating over 4 inputs so that they come from device memory), % of copy and
// whether its bytes equal the reference's.
#include <algorithm>
#include <cstdio>
#include <cstring>
#include <tuple>
#include <vector>

#include "nvfp4_quantize.cu"

namespace {

constexpr int64_t kRows = 8192, kCols = 8192, kInputs = 4, kLaunches = 20, kRuns = 7;

__global__ void fill(__nv_bfloat16* x, int64_t n, uint32_t seed) {
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n; i += int64_t(gridDim.x) * blockDim.x) {
    uint32_t h = uint32_t(i) * 2654435761u ^ seed;  // a hash spread over [-4, 4), some exact zeros
    h ^= h >> 15; h *= 2246822519u; h ^= h >> 13;
    x[i] = __float2bfloat16((int32_t(h % 2048) - 1024) / 256.0f);
  }
}

template <typename F>
double median_us(F launch_once) {
  cudaEvent_t start, end;
  cudaEventCreate(&start);
  cudaEventCreate(&end);
  std::vector<float> runs;
  for (int r = 0; r < kRuns; ++r) {
    cudaEventRecord(start);
    for (int i = 0; i < kLaunches; ++i) launch_once(i);
    cudaEventRecord(end);
    cudaEventSynchronize(end);
    float ms = 0;
    cudaEventElapsedTime(&ms, start, end);
    runs.push_back(ms * 1000.0f / kLaunches);
  }
  std::sort(runs.begin(), runs.end());
  return runs[kRuns / 2];
}

}  // namespace

int main() {
  using namespace comfyx;
  const int64_t n = kRows * kCols, scale_cols = kCols / 16, scale_cols_padded = (scale_cols + 3) / 4 * 4;
  const int64_t scale_bytes = (kRows + 127) / 128 * 128 * scale_cols_padded;
  __nv_bfloat16* x[kInputs];
  for (int i = 0; i < kInputs; ++i) {
    check_cuda(cudaMalloc(&x[i], n * 2), "malloc");
    fill<<<1024, 256>>>(x[i], n, 0x9e3779b9u * (i + 1));
  }
  float* pts;
  const float per_tensor_scale = 4.0f / (448.0f * 6.0f);
  check_cuda(cudaMalloc(&pts, 4), "malloc");
  cudaMemcpy(pts, &per_tensor_scale, 4, cudaMemcpyHostToDevice);
  uint8_t *q, *scales, *q_ref, *scales_ref;
  for (uint8_t** p : {&q, &q_ref}) check_cuda(cudaMalloc(p, n / 2), "malloc");
  for (uint8_t** p : {&scales, &scales_ref}) check_cuda(cudaMalloc(p, scale_bytes), "malloc");
  const int bf16 = int(FloatType::kBFloat16);
  auto args = [&](int i, uint8_t* out, uint8_t* s) {
    return std::make_tuple(std::uintptr_t(x[i % kInputs]), std::uintptr_t(pts), std::uintptr_t(out),
                           std::uintptr_t(s), kRows, kCols, scale_cols_padded, bf16, true, std::uintptr_t(0));
  };
  std::apply(launch_quantize_nvfp4<Loads::kStreaming, false, 256>, args(0, q_ref, scales_ref));

  // copy bandwidth: read + write of 1 GiB
  void *src, *dst;
  const size_t copy = size_t(1) << 30;
  check_cuda(cudaMalloc(&src, copy), "malloc");
  check_cuda(cudaMalloc(&dst, copy), "malloc");
  for (int i = 0; i < 20; ++i) cudaMemcpyAsync(dst, src, copy, cudaMemcpyDeviceToDevice);
  const double copy_us = median_us([&](int) { cudaMemcpyAsync(dst, src, copy, cudaMemcpyDeviceToDevice); });
  const double copy_gbs = 2.0 * copy / (copy_us * 1e-6) / 1e9;
  const double moved = n * 2.0 + n / 2.0 + scale_bytes;

  std::vector<uint8_t> hq(n / 2), hs(scale_bytes), hq_ref(n / 2), hs_ref(scale_bytes);
  cudaMemcpy(hq_ref.data(), q_ref, n / 2, cudaMemcpyDeviceToHost);
  cudaMemcpy(hs_ref.data(), scales_ref, scale_bytes, cudaMemcpyDeviceToHost);
  std::printf("{\"copy_bandwidth_gbs\": %.1f, \"bytes_moved\": %.0f, \"variants\": [", copy_gbs, moved);
  bool first = true;
  auto measure = [&]<Loads L, bool Packed, int Threads>() {
    auto once = [&](int i) { std::apply(launch_quantize_nvfp4<L, Packed, Threads>, args(i, q, scales)); };
    for (int i = 0; i < 10; ++i) once(i);
    check_cuda(cudaDeviceSynchronize(), "warm-up");
    const double us = median_us(once);
    once(0);
    cudaMemcpy(hq.data(), q, n / 2, cudaMemcpyDeviceToHost);
    cudaMemcpy(hs.data(), scales, scale_bytes, cudaMemcpyDeviceToHost);
    const bool equal = hq == hq_ref && hs == hs_ref;
    std::printf("%s\n {\"loads\": \"%s\", \"packed_amax\": %s, \"threads\": %d, \"us\": %.2f, \"pct_copy\": %.1f, "
                "\"equal_to_reference\": %s}",
                first ? "" : ",", L == Loads::kStreaming ? "streaming" : "cached", Packed ? "true" : "false", Threads, us,
                100.0 * moved / (us * 1e-6) / 1e9 / copy_gbs, equal ? "true" : "false");
    first = false;
  };
  constexpr Loads S = Loads::kStreaming, C = Loads::kCached;
  measure.template operator()<S, false, 256>();  // the reference
  measure.template operator()<S, true, 256>();
  measure.template operator()<C, false, 256>();
  measure.template operator()<C, true, 256>();
  measure.template operator()<S, true, 128>();
  measure.template operator()<S, true, 512>();
  measure.template operator()<C, true, 128>();
  measure.template operator()<C, true, 512>();
  measure.template operator()<S, false, 256>();  // the reference again: the run's drift
  std::printf("\n]}\n");
  return 0;
}
