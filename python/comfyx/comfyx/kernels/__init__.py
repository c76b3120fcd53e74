"""comfyx's kernels inside ComfyUI: its fp8 operation set, Flux RoPE, and model quantization.

:func:`install` registers hooks that run when ComfyUI imports the modules they change (never
file patches):

- ``comfy.ops.pick_operations`` returns comfyx's operation set (:mod:`.ops`): fp8, NVFP4 and
  MXFP8 Linear layers, from any checkpoint format ComfyUI reads, multiply on comfyx's kernels;
- ``comfy.model_detection.model_config_from_unet`` recognises newer ComfyUI's per-layer
  ``comfy_quant`` checkpoints (:mod:`.formats`), which v0.3.64 would load as unscaled fp8;
- ``comfy.ldm.flux.math`` gets comfyx's RoPE (:mod:`.rope`).

The Quantize Model (comfyx) node (:mod:`.nodes`) and ``--quantize`` (:mod:`.quantize`) turn a
bf16/fp16 diffusion model's Linear layers into fp8, NVFP4 or MXFP8 ones of that operation set.
"""

from __future__ import annotations

import functools
import importlib.util
import inspect
import logging
from dataclasses import dataclass
from types import ModuleType

from comfyx.comfyui.hooks import after_import

log = logging.getLogger("comfyx.kernels")

QUANTIZE_FORMATS = ("fp8", "nvfp4", "mxfp8")  # what Quantize Model and --quantize make
QUANTIZE_LAYERS = ("blocks", "all")  # the transformer blocks' Linear layers, or every Linear layer
ACTIVATION_SCALES = ("calibrated", "dynamic")  # fixed after the first step (.calibrate), or per call
NVFP4_ACTIVATIONS = ("bf16", "fp8")  # NVFP4 layers on sm_89/sm_90: exact, or W4A8 (comfyx_kernels' nvfp4_linear)


@dataclass(frozen=True)
class LayerOptions:
    """How comfyx's quantized layers multiply: ``fp8_fast_accum`` (``--fp8-fast-accum``) and
    ``nvfp4_activation`` (``--nvfp4-activation``)."""

    fp8_fast_accum: bool = True
    nvfp4_activation: str = "bf16"


def unavailable_reason() -> str | None:
    """Why comfyx's kernels cannot be installed into ComfyUI here, or None."""
    if importlib.util.find_spec("comfyx_kernels") is None:
        return "comfyx-kernels is not installed (pip install ./python/comfyx-kernels)"
    return None


def install(options: LayerOptions) -> None:
    """Make ComfyUI build its models from comfyx's operation set, whose layers multiply as ``options`` say,
    and use comfyx's RoPE.

    Imports nothing that imports torch: ComfyUI's main.py must be the first to (it sets the
    CUDA allocator's environment before, and warns when torch came earlier).
    """
    after_import("comfy.ops", lambda comfy_ops: _wrap_pick_operations(comfy_ops, options))
    after_import("comfy.model_detection", _installer("comfyx.kernels.formats"))
    after_import("comfy.ldm.flux.math", _installer("comfyx.kernels.rope"))


def _installer(module: str):
    return lambda target: importlib.import_module(module).install_into(target)


def _wrap_pick_operations(comfy_ops: ModuleType, options: LayerOptions) -> None:
    from comfyx.kernels.ops import operations_for

    pick_operations = comfy_ops.pick_operations
    signature = inspect.signature(pick_operations)
    if "scaled_fp8" not in signature.parameters:
        log.warning("comfyx kernels: not installed: this ComfyUI's comfy.ops.pick_operations%s is not v0.3.64's",
                    signature)
        return

    @functools.wraps(pick_operations)
    def comfyx_pick_operations(*args, **kwargs):
        base = pick_operations(*args, **kwargs)
        scaled_fp8 = signature.bind(*args, **kwargs).arguments.get("scaled_fp8")
        # a scaled_fp8 file decides per layer: a layer it left float stays float
        return operations_for(base, options, keep_float_layers=scaled_fp8 is not None)

    comfy_ops.pick_operations = comfyx_pick_operations
