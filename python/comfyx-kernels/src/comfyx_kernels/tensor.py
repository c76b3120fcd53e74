"""comfy-kitchen's `comfy_kitchen.tensor` names, so code written for it imports the same:
`from comfyx_kernels.tensor import QuantizedTensor, TensorCoreNVFP4Layout`."""

from .layouts import (
    LAYOUTS,
    Params,
    TensorCoreFP8Layout,
    TensorCoreMXFP8Layout,
    TensorCoreNVFP4Layout,
    get_layout_class,
)
from .quantized_tensor import QuantizedTensor

__all__ = [
    "LAYOUTS",
    "Params",
    "QuantizedTensor",
    "TensorCoreFP8Layout",
    "TensorCoreMXFP8Layout",
    "TensorCoreNVFP4Layout",
    "get_layout_class",
]
