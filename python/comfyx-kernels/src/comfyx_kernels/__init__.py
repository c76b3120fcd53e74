"""comfyx-kernels: FP8, NVFP4 and MXFP8 quantization, GEMMs and RoPE for diffusion inference,
with comfy-kitchen's op names and formats, and a QuantizedTensor for all three layouts.

Backends are tried in the order cuda → triton → eager; each declares what it can take and
`list_backends()` says why any of them is unavailable.
"""

from .backends import load_all as _load_backends
from .blockscaled_linear import (
    LinearPath,
    mxfp8_linear,
    mxfp8_linear_path,
    nvfp4_linear,
    nvfp4_linear_path,
)
from .ops import (
    apply_rope,
    apply_rope1,
    apply_rope1_,
    apply_rope_,
    dequantize_per_tensor_fp8,
    quantize_fp8_dynamic,
    quantize_per_tensor_fp8,
)
from .ops_blockscaled import (
    dequantize_mxfp8,
    dequantize_nvfp4,
    linear_nvfp4_weight,
    mxfp8_to_fp8_rowwise,
    nvfp4_to_fp8,
    quantize_mxfp8,
    quantize_nvfp4,
    scaled_mm_mxfp8,
    scaled_mm_nvfp4,
)
from .registry import (
    BackendStatus,
    NoCapableBackendError,
    UnknownBackendError,
    backend_trace,
    last_backend,
    list_backends,
    use_backend,
)

_load_backends()

__all__ = [
    "BackendStatus",
    "LinearPath",
    "NoCapableBackendError",
    "UnknownBackendError",
    "apply_rope",
    "apply_rope1",
    "apply_rope1_",
    "apply_rope_",
    "backend_trace",
    "dequantize_mxfp8",
    "dequantize_nvfp4",
    "dequantize_per_tensor_fp8",
    "last_backend",
    "linear_nvfp4_weight",
    "list_backends",
    "mxfp8_linear",
    "mxfp8_linear_path",
    "mxfp8_to_fp8_rowwise",
    "nvfp4_linear",
    "nvfp4_linear_path",
    "nvfp4_to_fp8",
    "quantize_fp8_dynamic",
    "quantize_mxfp8",
    "quantize_nvfp4",
    "quantize_per_tensor_fp8",
    "scaled_mm_mxfp8",
    "scaled_mm_nvfp4",
    "use_backend",
]
