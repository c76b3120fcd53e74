"""Quantizing a loaded bf16/fp16 diffusion model's Linear layers to fp8, NVFP4 or MXFP8.

Two ways, one selection of layers:

- :func:`quantize_loaded_model` changes a model that has just been loaded and that nothing else
  holds yet (``comfyx serve --quantize fp8|nvfp4|mxfp8``), in place;
- :func:`quantized_clone` (the **Quantize Model (comfyx)** node) leaves the model other nodes
  share untouched: its clone gets quantized copies of the layers as ModelPatcher object patches,
  which ComfyUI swaps into the shared model only while the clone is the one loaded.

Either way a layer that cannot be quantized (its shape, its dtype) stays as it was, and the log
says which layers and why, once.
"""

from __future__ import annotations

import logging
import uuid
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from comfyx.comfyui.blocks import block_paths
from comfyx.kernels import QUANTIZE_FORMATS, QUANTIZE_LAYERS, LayerOptions
from comfyx.kernels.blockscaled import BLOCK_FORMATS
from comfyx.kernels.ops import FP8_DTYPES, QuantizedLinear, operations_for
from comfyx.kernels.pinned import PinnedHost

log = logging.getLogger("comfyx.kernels")

FORMATS = QUANTIZE_FORMATS
LAYERS = QUANTIZE_LAYERS
FLOAT_DTYPES = (torch.float32, torch.float16, torch.bfloat16)
DIFFUSION_MODEL = "diffusion_model"


@dataclass
class QuantizePlan:
    """The Linear layers of one diffusion model to quantize, and those left as they are, with why."""

    model: str
    chosen: list[tuple[str, nn.Linear]] = field(default_factory=list)
    skipped: Counter = field(default_factory=Counter)  # reason -> number of layers
    examples: dict[str, str] = field(default_factory=dict)  # reason -> first layer it hit

    def skip(self, path: str, reason: str) -> None:
        self.skipped[reason] += 1
        self.examples.setdefault(reason, path)

    def log(self, what: str) -> None:
        log.info("comfyx quantize: %s: %d Linear layers %s", self.model, len(self.chosen), what)
        for reason, count in self.skipped.items():
            log.info("comfyx quantize: %s: %d Linear layers kept as they are (e.g. %s): %s",
                     self.model, count, self.examples[reason], reason)


def shape_problem(layer: nn.Linear, fmt: str) -> str | None:
    """Why this layer's weight cannot be quantized to ``fmt`` and multiply on the kernels, or None."""
    if isinstance(layer, QuantizedLinear) and layer.block_format is not None:
        return f"already {layer.block_format}"
    if layer.weight.dtype in FP8_DTYPES:
        return "already fp8"
    if layer.weight.dtype not in FLOAT_DTYPES:
        return f"weight dtype {layer.weight.dtype} is not a float dtype"
    n, k = layer.weight.shape
    if fmt in BLOCK_FORMATS:
        block = BLOCK_FORMATS[fmt].block
        if k % block:  # (rows are padded; padding the activation's columns would cost a copy per call)
            return f"{fmt} needs in features divisible by its block of {block}, this layer has {k}"
    elif k % 16 or n % 16:
        return f"fp8 GEMMs need in and out features divisible by 16 (cuBLASLt), this layer has {k} and {n}"
    return None


def plan_for(diffusion_model: nn.Module, layers: str, fmt: str, resolve: Any = None) -> QuantizePlan:
    """The Linear layers of ``diffusion_model`` that ``layers`` selects, and which of them can be ``fmt``.

    ``resolve(path)`` gives the layer a path stands for when that may differ from the module in
    the tree now (a ModelPatcher clone's layers swapped in); by default, the module itself.
    """
    if layers not in LAYERS:
        raise ValueError(f"layers must be one of {', '.join(LAYERS)}, not {layers!r}")
    if fmt not in FORMATS:
        raise ValueError(f"format must be one of {', '.join(FORMATS)}, not {fmt!r}")
    plan = QuantizePlan(type(diffusion_model).__name__)
    blocks = tuple(p + "." for p in block_paths(diffusion_model)) if layers == "blocks" else None
    for path, module in diffusion_model.named_modules():
        if not isinstance(module, nn.Linear):
            continue
        if blocks is not None and not path.startswith(blocks):
            plan.skip(path, "outside the transformer blocks (layers=blocks; layers=all takes every Linear)")
            continue
        layer = resolve(path) if resolve is not None else module
        problem = shape_problem(layer, fmt)
        if problem is None:
            plan.chosen.append((path, layer))
        else:
            plan.skip(path, problem)
    return plan


def device_problem(device: torch.device, fmt: str) -> str | None:
    """Why ``fmt`` layers cannot multiply on comfyx's kernels on ``device`` (only dequantized), or None."""
    if fmt in BLOCK_FORMATS:
        from comfyx_kernels import mxfp8_linear_path, nvfp4_linear_path

        probe = torch.empty(0, 32, dtype=torch.bfloat16, device=device)
        path = (nvfp4_linear_path if fmt == "nvfp4" else mxfp8_linear_path)(probe)
        return path.reason if path.name == "fallback" else None
    from comfyx_kernels.quantized_tensor import fp8_linear_problem

    return fp8_linear_problem(torch.empty(0, 16, device=device), torch.empty(16, 16, dtype=torch.float8_e4m3fn,
                                                                             device=device))


def quantize_loaded_model(patcher: Any, fmt: str, layers: str, options: LayerOptions) -> None:
    """Quantize a freshly loaded model's layers to ``fmt`` in place (nothing else holds the model yet);
    ``options``: how layers that were not comfyx's yet multiply (``--fp8-fast-accum``, ``--nvfp4-activation``).

    Quantizing where the kernels cannot run would only trade speed and accuracy for memory, so on
    such a device the model stays as loaded and the log says why.
    """
    problem = device_problem(patcher.load_device, fmt)
    diffusion_model = patcher.model.diffusion_model
    if problem is not None:
        log.info("comfyx quantize: %s stays %s: %s", type(diffusion_model).__name__,
                 _dtype_of(diffusion_model), problem)
        return
    plan = plan_for(diffusion_model, layers, fmt)
    host = PinnedHost()
    for path, module in plan.chosen:
        if not isinstance(module, QuantizedLinear):  # built before comfyx's op set was installed
            module = _quantizable_copy(module, options)
            _set_submodule(diffusion_model, path, module)
        module.quantize_weight_(fmt, device=patcher.load_device, host=host)
    host.wait()
    if plan.chosen:
        # saved models get ComfyUI's scaled_fp8 marker (NVFP4 / MXFP8 layers their comfy_quant too),
        # so they load back as what they are
        patcher.model.model_config.scaled_fp8 = torch.float8_e4m3fn
        patcher.size = 0
        patcher.model_size()
    plan.log(f"quantized to {fmt} at load ({layers})")


def quantized_clone(patcher: Any, layers: str, fmt: str, options: LayerOptions) -> Any:
    """A clone of ``patcher`` whose chosen Linear layers are ``fmt`` copies (multiplying as ``options``
    say); ``patcher`` is untouched."""
    clone = patcher.clone()
    # the layers this model stands for, even while another clone has its own swapped in
    plan = plan_for(clone.get_model_object(DIFFUSION_MODEL), layers, fmt,
                    lambda path: clone.get_model_object(f"{DIFFUSION_MODEL}.{path}"))
    saved = 0
    host = PinnedHost()
    for path, source in plan.chosen:
        copy = _quantizable_copy(source, options)
        copy.quantize_weight_(fmt, device=patcher.load_device, host=host)
        saved += source.weight.nbytes - sum(p.nbytes for name, p in copy.named_parameters() if name != "bias")
        clone.add_object_patch(f"{DIFFUSION_MODEL}.{path}", copy)
    host.wait()
    if plan.chosen:
        # Object patches do not change patches_uuid, and ComfyUI keeps a loaded clone's weights
        # when the uuid matches: a new one makes it swap the layers in (as set_model_compute_dtype
        # does). The size estimate drives ComfyUI's loading decisions.
        clone.patches_uuid = uuid.uuid4()
        clone.size = max(clone.model_size() - saved, 0)
    plan.log(f"quantized to {fmt} ({layers}) in a clone; the source model is unchanged")
    return clone


def _quantizable_copy(source: nn.Linear, options: LayerOptions) -> QuantizedLinear:
    """A comfyx Linear holding ``source``'s weight until it is quantized, and a copy of its bias.

    The bias is copied, not shared: ComfyUI moves a loaded layer's parameters in place, and a
    shared one would move the other model's too.
    """
    import comfy.ops

    linear_class = operations_for(comfy.ops.manual_cast, options).Linear
    copy = linear_class(source.in_features, source.out_features, bias=False, device="meta")
    copy.weight = source.weight
    if source.bias is not None:
        copy.bias = nn.Parameter(source.bias.detach().clone(), requires_grad=False)
    return copy


def _set_submodule(root: nn.Module, path: str, module: nn.Module) -> None:
    parent, _, name = path.rpartition(".")
    setattr(root.get_submodule(parent) if parent else root, name, module)


def _dtype_of(module: nn.Module) -> str:
    dtypes = Counter(str(p.dtype).removeprefix("torch.") for p in module.parameters())
    return dtypes.most_common(1)[0][0] if dtypes else "empty"
