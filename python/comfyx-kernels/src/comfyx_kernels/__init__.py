"""comfyx-kernels: FP8 quantization, RoPE and an FP8 QuantizedTensor for diffusion inference.

Backends are tried in the order cuda → triton → eager; each declares what it can take and
`list_backends()` says why any of them is unavailable.
"""

from .backends import load_all as _load_backends
from .ops import (
    apply_rope,
    apply_rope1,
    apply_rope1_,
    apply_rope_,
    dequantize_per_tensor_fp8,
    quantize_fp8_dynamic,
    quantize_per_tensor_fp8,
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
    "NoCapableBackendError",
    "UnknownBackendError",
    "apply_rope",
    "apply_rope1",
    "apply_rope1_",
    "apply_rope_",
    "backend_trace",
    "dequantize_per_tensor_fp8",
    "last_backend",
    "list_backends",
    "quantize_fp8_dynamic",
    "quantize_per_tensor_fp8",
    "use_backend",
]
