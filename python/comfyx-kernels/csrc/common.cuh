// Shared helpers for the comfyx-kernels CUDA extension.
#pragma once

#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_fp8.h>
#include <cuda_runtime.h>

#include <cstdint>
#include <stdexcept>
#include <string>

namespace comfyx {

// Codes shared with backends/cuda.py.
enum class FloatType : int { kFloat32 = 0, kFloat16 = 1, kBFloat16 = 2 };
enum class Fp8Type : int { kE4M3 = 0, kE5M2 = 1 };

inline void check_cuda(cudaError_t status, const char* what) {
  if (status != cudaSuccess) {
    throw std::runtime_error(std::string(what) + ": " + cudaGetErrorString(status));
  }
}

__device__ __forceinline__ float to_float(float v) { return v; }
__device__ __forceinline__ float to_float(__half v) { return __half2float(v); }
__device__ __forceinline__ float to_float(__nv_bfloat16 v) { return __bfloat162float(v); }

template <typename T>
__device__ __forceinline__ T from_float(float v);
template <>
__device__ __forceinline__ float from_float<float>(float v) { return v; }
template <>
__device__ __forceinline__ __half from_float<__half>(float v) { return __float2half_rn(v); }
template <>
__device__ __forceinline__ __nv_bfloat16 from_float<__nv_bfloat16>(float v) {
  return __float2bfloat16_rn(v);
}

// Calls `body.template operator()<T>()` with T the C++ type for `type`.
template <typename Body>
void dispatch_float(FloatType type, Body&& body) {
  switch (type) {
    case FloatType::kFloat32: body.template operator()<float>(); return;
    case FloatType::kFloat16: body.template operator()<__half>(); return;
    case FloatType::kBFloat16: body.template operator()<__nv_bfloat16>(); return;
  }
  throw std::invalid_argument("unknown float type code " + std::to_string(int(type)));
}

inline __nv_fp8_interpretation_t fp8_interpretation(Fp8Type type) {
  switch (type) {
    case Fp8Type::kE4M3: return __NV_E4M3;
    case Fp8Type::kE5M2: return __NV_E5M2;
  }
  throw std::invalid_argument("unknown fp8 type code " + std::to_string(int(type)));
}

// Calls `body.template operator()<K>()` with K the fp8 interpretation for `type`.
template <typename Body>
void dispatch_fp8(Fp8Type type, Body&& body) {
  switch (type) {
    case Fp8Type::kE4M3: body.template operator()<__NV_E4M3>(); return;
    case Fp8Type::kE5M2: body.template operator()<__NV_E5M2>(); return;
  }
  throw std::invalid_argument("unknown fp8 type code " + std::to_string(int(type)));
}

template <__nv_fp8_interpretation_t Kind>
constexpr float kFp8Max = Kind == __NV_E4M3 ? 448.0f : 57344.0f;

}  // namespace comfyx
