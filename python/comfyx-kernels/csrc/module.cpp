// nanobind bindings: Python passes device addresses, sizes and the current stream as integers,
// after backends/cuda.py has checked every argument (see its Constraints).
#include <nanobind/nanobind.h>
#include <nanobind/stl/vector.h>

#include <vector>

#include "kernels.h"

namespace nb = nanobind;
using namespace nb::literals;

namespace {

comfyx::RopeTensor rope_tensor(const std::vector<std::int64_t>& v) {
  // x, out, batch, seq, heads, 4 x strides, 4 out strides, 3 freqs strides
  if (v.size() != 16) throw std::invalid_argument("rope tensor description needs 16 integers");
  comfyx::RopeTensor t{};
  t.x = std::uintptr_t(v[0]);
  t.out = std::uintptr_t(v[1]);
  t.batch = v[2];
  t.seq = v[3];
  t.heads = v[4];
  for (int i = 0; i < 4; ++i) t.x_strides[i] = v[5 + i];
  for (int i = 0; i < 4; ++i) t.out_strides[i] = v[9 + i];
  for (int i = 0; i < 3; ++i) t.freqs_strides[i] = v[13 + i];
  return t;
}

}  // namespace

NB_MODULE(_cuda_ext, m) {
  m.doc() = "CUDA kernels of comfyx-kernels (fp8 and NVFP4 quantization, RoPE)";
  m.def("quantize_fp8", &comfyx::quantize_fp8, "x"_a, "scale"_a, "out"_a, "n"_a,
        "float_type"_a, "fp8_type"_a, "stream"_a);
  m.def("dequantize_fp8", &comfyx::dequantize_fp8, "x"_a, "scale"_a, "out"_a, "n"_a,
        "fp8_type"_a, "float_type"_a, "stream"_a);
  m.def("dynamic_quantize_max_blocks", &comfyx::dynamic_quantize_max_blocks, "device"_a);
  m.def("quantize_fp8_dynamic", &comfyx::quantize_fp8_dynamic, "x"_a, "partials"_a,
        "partials_capacity"_a, "scale"_a, "out"_a, "n"_a, "float_type"_a, "fp8_type"_a,
        "device"_a, "stream"_a);
  m.def("quantize_nvfp4", &comfyx::quantize_nvfp4, "x"_a, "per_tensor_scale"_a, "q"_a,
        "scales"_a, "rows"_a, "cols"_a, "scale_cols_padded"_a, "float_type"_a, "hi_first"_a,
        "stream"_a);
  m.def(
      "rope",
      [](const std::vector<std::vector<std::int64_t>>& tensors, std::uintptr_t freqs,
         std::int64_t dim, int float_type, bool vectorized, int heads_per_thread,
         std::uintptr_t stream) {
        std::vector<comfyx::RopeTensor> parsed;
        for (const auto& t : tensors) parsed.push_back(rope_tensor(t));
        comfyx::rope(parsed.data(), int(parsed.size()), freqs, dim, float_type, vectorized,
                     heads_per_thread, stream);
      },
      "tensors"_a, "freqs"_a, "dim"_a, "float_type"_a, "vectorized"_a, "heads_per_thread"_a,
      "stream"_a);
}
