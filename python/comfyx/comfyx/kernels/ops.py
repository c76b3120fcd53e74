"""comfyx's operation set: ComfyUI's layer classes whose fp8 Linear layers run on comfyx's kernels.

ComfyUI builds a diffusion model from an "operations" namespace (``comfy.ops.pick_operations``:
``manual_cast``, ``scaled_fp8_ops(...)``, ``fp8_ops`` ...). :func:`operations_for` subclasses the
one ComfyUI picked, replacing only ``Linear``: a layer whose weight is fp8 multiplies through
``comfyx_kernels.scaled_fp8_linear`` (the activation quantized on the device with a static
per-tensor ``scale_input``, the checkpoint's or one calibrated on the first step (:mod:`.calibrate`),
or else a dynamic one; a cuBLASLt fp8 GEMM); every other layer runs exactly as ComfyUI runs it.

One class reads every fp8 format ComfyUI knows, whatever dtype ComfyUI built the layer in:
v0.3.64's ``scaled_fp8`` (``scale_weight``, ``scale_input``), plain fp8 weights (no scale:
``--fp8_e4m3fn-unet`` or an fp8 file), and newer ComfyUI's per-layer ``comfy_quant`` metadata
(``weight_scale``, ``input_scale``, ``comfy_quant``). In memory a quantized layer holds its fp8
``weight``, a float32 ``scale_weight`` and, when the checkpoint has one, ``scale_input``; these are
the names ComfyUI's own scaled fp8 layers use, so its LoRA patching (``convert_weight`` /
``set_weight``), offloading and saving work on them unchanged.
"""

from __future__ import annotations

import json
import logging
from typing import Any

import torch

log = logging.getLogger("comfyx.kernels")

FP8_DTYPES = (torch.float8_e4m3fn, torch.float8_e5m2)
_FP8_BY_NAME = {str(dtype).removeprefix("torch."): dtype for dtype in FP8_DTYPES}

# Keys other formats use for the same tensors (newer ComfyUI's comfy_quant layers).
_ALIASES = {"weight_scale": "scale_weight", "input_scale": "scale_input"}


class UnsupportedQuantFormatError(ValueError):
    """A layer's ``comfy_quant`` metadata names a format comfyx cannot run (the message says which)."""


class _Once:
    """Logs each distinct message once per process: a reason applies to every layer it hits."""

    def __init__(self) -> None:
        self._seen: set[str] = set()

    def __call__(self, message: str, *args: Any) -> None:
        text = message % args if args else message
        if text not in self._seen:
            self._seen.add(text)
            log.info("%s", text)


log_once = _Once()


def comfy_quant_format(raw: torch.Tensor, key: str) -> torch.dtype:
    """The fp8 dtype a layer's ``comfy_quant`` tensor (UTF-8 JSON bytes) declares."""
    try:
        config = json.loads(bytes(raw.to(torch.uint8).tolist()).decode("utf-8"))
        name = config["format"]
    except (ValueError, KeyError, TypeError) as err:
        raise UnsupportedQuantFormatError(f"{key} is not comfy_quant metadata ({err})") from None
    if name not in _FP8_BY_NAME:
        raise UnsupportedQuantFormatError(
            f"{key} declares format {name!r}; comfyx runs {', '.join(_FP8_BY_NAME)} layers"
        )
    return _FP8_BY_NAME[name]


class Fp8Linear:
    """Mixin for a ComfyUI ``Linear`` op class: fp8 weights multiply on comfyx's kernels.

    ``keep_float_layers`` (class attribute): a layer whose checkpoint weight is float stays float
    even if ComfyUI built it fp8 (a scaled_fp8 file leaves some layers unquantized on purpose);
    otherwise ComfyUI asked for fp8 weights (``--fp8_e4m3fn-unet``) and such a weight is quantized
    with its own per-tensor scale instead of ComfyUI's unscaled cast. ``fast_accum`` (class
    attribute, ``--fp8-fast-accum``): the fp8 GEMM's accumulation. Both are set by
    :func:`operations_for`.
    """

    # Also: the parameters scale_weight (float32; absent or None: 1) and scale_input (None:
    # dynamic activation scaling). Not declared here: a class attribute of that name would stop
    # nn.Module from registering the parameter.
    keep_float_layers: bool
    fast_accum: bool
    input_amax: torch.Tensor | None = None  # the running amax while a calibration pass (.calibrate) runs

    # ---- loading -------------------------------------------------------------------------

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs):
        for alias, name in _ALIASES.items():
            if prefix + alias in state_dict:
                state_dict[prefix + name] = state_dict.pop(prefix + alias)
        weight = state_dict.get(prefix + "weight")
        quant = state_dict.pop(prefix + "comfy_quant", None)
        declared = None if quant is None else comfy_quant_format(quant, prefix + "comfy_quant")
        if declared is not None and weight is not None and declared != weight.dtype:
            raise UnsupportedQuantFormatError(
                f"{prefix}comfy_quant declares a format other than {prefix}weight's dtype {weight.dtype}"
            )
        if weight is not None and weight.dtype in FP8_DTYPES:
            self._expect_fp8(weight, state_dict, prefix)
        elif weight is not None and self.weight.dtype in FP8_DTYPES:
            if self.keep_float_layers:  # its scale_weight (1 unless the file has one) still applies
                self._replace("weight", torch.empty_like(weight, device=self.weight.device))
            else:
                qdata, scale = _quantize(weight.to(self.weight.device))
                state_dict[prefix + "weight"], state_dict[prefix + "scale_weight"] = qdata, scale
                self._expect_fp8(qdata, state_dict, prefix)
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)

    def _expect_fp8(self, weight: torch.Tensor, state_dict: dict, prefix: str) -> None:
        """Shape the layer's parameters for an fp8 weight whose tensors are in ``state_dict``."""
        if self.weight.dtype != weight.dtype:
            self._replace("weight", torch.empty_like(weight, device=self.weight.device))
        state_dict.setdefault(prefix + "scale_weight", torch.ones((), dtype=torch.float32))
        self._replace("scale_weight", torch.ones((), dtype=torch.float32, device=self.weight.device))
        if prefix + "scale_input" in state_dict:
            self._replace("scale_input", torch.ones((), dtype=torch.float32, device=self.weight.device))
        else:
            self.scale_input = None

    def _replace(self, name: str, value: torch.Tensor) -> None:
        setattr(self, name, torch.nn.Parameter(value, requires_grad=False))

    # ---- quantizing a float layer (Quantize Model, quantize at load) -----------------------

    def quantize_weight_(self, device: torch.device | None = None) -> None:
        """Replace this layer's float weight by fp8 data and a per-tensor scale, in place."""
        weight = self.weight.to(device) if device is not None else self.weight
        qdata, scale = _quantize(weight.detach())
        self._replace("weight", qdata.to(self.weight.device))
        self._replace("scale_weight", scale.to(self.weight.device))
        self.scale_input = None

    def set_input_scale(self, scale: torch.Tensor) -> None:
        """Scale activations by ``scale`` (float32, one element) from now on instead of dynamically."""
        self._replace("scale_input", scale.detach().to(dtype=torch.float32, device=self.weight.device).reshape(()))

    # ---- running ---------------------------------------------------------------------------

    def forward(self, *args: Any, **kwargs: Any) -> torch.Tensor:
        if self.weight.dtype in FP8_DTYPES:
            return self.forward_comfy_cast_weights(*args, **kwargs)
        return super().forward(*args, **kwargs)

    def forward_comfy_cast_weights(self, input: torch.Tensor) -> torch.Tensor:
        # (not self.training: ComfyUI leaves most diffusion models in training mode for inference)
        if self.weight.dtype not in FP8_DTYPES:
            return super().forward_comfy_cast_weights(input)
        import comfy.ops
        import comfyx_kernels.quantized_tensor as kernels

        if self.input_amax is not None:  # a calibration pass (.calibrate): eager, never traced
            # on the input's device: with --lowvram the weight may wait on the CPU
            self.input_amax = torch.maximum(self.input_amax.to(input.device), input.detach().abs().amax().float())
        weight, bias = comfy.ops.cast_bias_weight(self, input, dtype=self.weight.dtype, bias_dtype=input.dtype)
        scale = _scale_on(getattr(self, "scale_weight", None), weight.device)
        problem = kernels.fp8_linear_problem(input, weight)  # tensor metadata only: traces under compile
        if problem is None and torch.is_grad_enabled() and input.requires_grad:
            problem = "gradients flow through the layer (training): fp8 kernels are inference-only"
        if problem is None:
            static = getattr(self, "scale_input", None)
            input_scale = None if static is None else _scale_on(static, weight.device)
            return kernels.scaled_fp8_linear(input, weight, scale, bias, input_scale, self.fast_accum)
        log_once("comfyx kernels: fp8 layers run dequantized, as ComfyUI runs them: %s", problem)
        dequantized = kernels.TensorCoreFP8Layout.dequantize(weight, scale, input.dtype)
        return torch.nn.functional.linear(input, dequantized, bias)

    # ---- ComfyUI's weight patching (LoRA) ----------------------------------------------------

    def convert_weight(self, weight: torch.Tensor, inplace: bool = False, **kwargs: Any) -> torch.Tensor:
        """The float weight a stored weight stands for (ComfyUI patches that, then calls set_weight)."""
        scale = getattr(self, "scale_weight", None)
        if scale is None:
            return weight
        scale = scale.to(device=weight.device, dtype=weight.dtype)
        return weight.mul_(scale) if inplace else weight * scale

    def set_weight(
        self, weight: torch.Tensor, inplace_update: bool = False, seed: int | None = None,
        return_weight: bool = False, **kwargs: Any,
    ) -> torch.Tensor | None:
        """Store a patched float weight in the layer's dtype, at its scale (re-quantized when fp8)."""
        import comfy.float

        scale = getattr(self, "scale_weight", None)
        if scale is not None:
            weight = weight / scale.to(device=weight.device, dtype=weight.dtype)
        weight = comfy.float.stochastic_rounding(weight, self.weight.dtype, seed=seed)
        if return_weight:
            return weight
        if inplace_update:
            self.weight.data.copy_(weight)
        else:
            self._replace("weight", weight)
        return None


def _quantize(weight: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    from comfyx_kernels import quantize_fp8_dynamic

    return quantize_fp8_dynamic(weight.contiguous(), torch.float8_e4m3fn)


def _scale_on(scale: torch.Tensor | None, device: torch.device) -> torch.Tensor:
    if scale is None:
        return torch.ones((), dtype=torch.float32, device=device)
    return scale.to(device=device, dtype=torch.float32, non_blocking=True)


def operations_for(base: type, *, keep_float_layers: bool = False, fast_accum: bool) -> type:
    """ComfyUI's operations ``base`` with comfyx's fp8 ``Linear``."""
    linear = type("Linear", (Fp8Linear, base.Linear), {"keep_float_layers": keep_float_layers,
                                                       "fast_accum": fast_accum})
    return type(f"comfyx_{base.__name__}", (base,), {"Linear": linear})
