"""comfyx's operation set: ComfyUI's layer classes whose quantized Linear layers run on comfyx's kernels.

ComfyUI builds a diffusion model from an "operations" namespace (``comfy.ops.pick_operations``:
``manual_cast``, ``scaled_fp8_ops(...)``, ``fp8_ops`` ...). :func:`operations_for` subclasses the
one ComfyUI picked, replacing only ``Linear``: a layer whose weight is fp8 multiplies through
``comfyx_kernels.scaled_fp8_linear`` (the activation quantized on the device with a static
per-tensor ``scale_input``, the checkpoint's or one calibrated on the first step (:mod:`.calibrate`),
or else a dynamic one; a cuBLASLt fp8 GEMM); an NVFP4 or MXFP8 layer through comfyx_kernels'
block-scaled linears (:mod:`.blockscaled`); every other layer runs exactly as ComfyUI runs it.

One class reads every quantized format ComfyUI knows, whatever dtype ComfyUI built the layer in:
v0.3.64's ``scaled_fp8`` (``scale_weight``, ``scale_input``), plain fp8 weights (no scale:
``--fp8_e4m3fn-unet`` or an fp8 file), and newer ComfyUI's per-layer ``comfy_quant`` metadata
(``weight_scale``, ``input_scale``, ``comfy_quant``; fp8, ``nvfp4`` with ``weight_scale_2``,
``mxfp8``). In memory an fp8 layer holds its fp8 ``weight``, a float32 ``scale_weight`` and, when
the checkpoint has one, ``scale_input``: the names ComfyUI's own scaled fp8 layers use, so its
LoRA patching (``convert_weight`` / ``set_weight``), offloading and saving work on them unchanged.
An NVFP4 / MXFP8 layer keeps the ``comfy_quant`` names and writes its ``comfy_quant`` back when saved.
"""

from __future__ import annotations

import json
import logging
from typing import Any

import comfyx_kernels.quantized_tensor as kernels
import torch

from comfyx.kernels import LayerOptions, blockscaled
from comfyx.kernels.blockscaled import BLOCK_FORMATS
from comfyx.kernels.pinned import PinnedHost

log = logging.getLogger("comfyx.kernels")

FP8_DTYPES = (torch.float8_e4m3fn, torch.float8_e5m2)
FP8_BY_NAME = {str(dtype).removeprefix("torch."): dtype for dtype in FP8_DTYPES}
COMFY_QUANT_FORMATS = (*FP8_BY_NAME, *BLOCK_FORMATS)

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


def comfy_quant_format(raw: torch.Tensor, key: str) -> str:
    """The format a layer's ``comfy_quant`` tensor (UTF-8 JSON bytes) declares: an fp8 dtype's name,
    ``nvfp4`` or ``mxfp8``."""
    try:
        config = json.loads(bytes(raw.to(torch.uint8).tolist()).decode("utf-8"))
        name = config["format"]
    except (ValueError, KeyError, TypeError) as err:
        raise UnsupportedQuantFormatError(f"{key} is not comfy_quant metadata ({err})") from None
    if name not in COMFY_QUANT_FORMATS:
        raise UnsupportedQuantFormatError(
            f"{key} declares format {name!r}; comfyx runs {', '.join(COMFY_QUANT_FORMATS)} layers"
        )
    return name


class QuantizedLinear:
    """Mixin for a ComfyUI ``Linear`` op class: quantized weights multiply on comfyx's kernels.

    A layer holds a float weight, a per-tensor fp8 one (``scale_weight``, ``scale_input``), or a
    block-scaled NVFP4 / MXFP8 one (``block_format`` names it; :mod:`.blockscaled`), as its
    checkpoint or Quantize Model made it.

    ``keep_float_layers`` (class attribute): a layer whose checkpoint weight is float stays float
    even if ComfyUI built it fp8 (a scaled_fp8 file leaves some layers unquantized on purpose);
    otherwise ComfyUI asked for fp8 weights (``--fp8_e4m3fn-unet``) and such a weight is quantized
    with its own per-tensor scale instead of ComfyUI's unscaled cast. ``options`` (class attribute):
    how the layers multiply (``--fp8-fast-accum``, ``--nvfp4-activation``). Both are set by
    :func:`operations_for`.
    """

    # Also: the parameters scale_weight (float32; absent or None: 1) and scale_input (None:
    # dynamic activation scaling). Not declared here: a class attribute of that name would stop
    # nn.Module from registering the parameter.
    keep_float_layers: bool
    options: LayerOptions
    block_format: str | None = None  # "nvfp4" / "mxfp8": the weight is block-scaled (.blockscaled)
    input_amax: torch.Tensor | None = None  # the running amax while a calibration pass (.calibrate) runs

    @property
    def per_tensor_fp8(self) -> bool:
        """Whether the weight is fp8 with one scale (the layers whose activation scales get calibrated)."""
        return self.block_format is None and self.weight.dtype in FP8_DTYPES

    # ---- loading -------------------------------------------------------------------------

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs):
        quant = state_dict.pop(prefix + "comfy_quant", None)
        declared = None if quant is None else comfy_quant_format(quant, prefix + "comfy_quant")
        if declared in BLOCK_FORMATS:
            self._expect_block_scaled(BLOCK_FORMATS[declared], state_dict, prefix)
            return super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)
        for alias, name in _ALIASES.items():
            if prefix + alias in state_dict:
                state_dict[prefix + name] = state_dict.pop(prefix + alias)
        weight = state_dict.get(prefix + "weight")
        if declared is not None and weight is not None and FP8_BY_NAME[declared] != weight.dtype:
            raise UnsupportedQuantFormatError(
                f"{prefix}comfy_quant declares {declared}, but {prefix}weight is {weight.dtype}"
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

    def _expect_block_scaled(self, fmt: blockscaled.BlockFormat, state_dict: dict, prefix: str) -> None:
        """Shape the layer's parameters for the ``fmt`` tensors in ``state_dict`` (checked first)."""
        blockscaled.check_stored(fmt, state_dict, prefix, self.out_features, self.in_features)
        device = self.weight.device
        names = ("weight", *fmt.scales, *(("input_scale",) if prefix + "input_scale" in state_dict else ()))
        for name in names:
            self._replace(name, torch.empty_like(state_dict[prefix + name], device=device))
        self.block_format = fmt.name
        self.scale_weight = self.scale_input = None  # the per-tensor fp8 parameters ComfyUI gave the layer

    def _save_to_state_dict(self, destination, prefix, keep_vars):
        super()._save_to_state_dict(destination, prefix, keep_vars)
        if self.block_format is not None:  # so that the saved layer loads back as what it is
            destination[prefix + "comfy_quant"] = blockscaled.comfy_quant_tensor(self.block_format)

    def _replace(self, name: str, value: torch.Tensor) -> None:
        setattr(self, name, torch.nn.Parameter(value, requires_grad=False))

    # ---- quantizing a float layer (Quantize Model, quantize at load) -----------------------

    def quantize_weight_(self, fmt: str = "fp8", device: torch.device | None = None,
                         host: PinnedHost | None = None) -> None:
        """Replace this layer's float weight by ``fmt`` ("fp8": fp8 data and a per-tensor scale; "nvfp4",
        "mxfp8": block-scaled), quantized on ``device`` (default: where the weight is), in place.

        ``host``: where a weight kept on the host gets its quantized tensors back from ``device``
        (page-locked; the caller waits for the copies); default: ordinary host memory."""
        home = self.weight.device
        weight = (self.weight.to(device) if device is not None else self.weight).detach()

        def back(tensor: torch.Tensor) -> torch.Tensor:
            return host.copy_of(tensor) if host is not None and home.type == "cpu" else tensor.to(home)

        if fmt in BLOCK_FORMATS:
            for name, tensor in blockscaled.quantize(BLOCK_FORMATS[fmt], weight).items():
                self._replace(name, back(tensor))
            self.block_format = fmt
            self.scale_weight = None
        else:
            qdata, scale = _quantize(weight)
            self._replace("weight", back(qdata))
            self._replace("scale_weight", back(scale))
        self.scale_input = None

    def set_input_scale(self, scale: torch.Tensor) -> None:
        """Scale activations by ``scale`` (float32, one element) from now on instead of dynamically."""
        self._replace("scale_input", scale.detach().to(dtype=torch.float32, device=self.weight.device).reshape(()))

    # ---- running ---------------------------------------------------------------------------

    def forward(self, *args: Any, **kwargs: Any) -> torch.Tensor:
        if self.block_format is not None:
            return self._forward_block_scaled(*args, **kwargs)
        if self.weight.dtype in FP8_DTYPES:
            return self._forward_fp8(*args, **kwargs)
        return super().forward(*args, **kwargs)

    def forward_comfy_cast_weights(self, input: torch.Tensor) -> torch.Tensor:
        # (not self.training: ComfyUI leaves most diffusion models in training mode for inference)
        if self.block_format is not None:
            return self._forward_block_scaled(input)
        if self.weight.dtype in FP8_DTYPES:
            return self._forward_fp8(input)
        return super().forward_comfy_cast_weights(input)

    def _forward_fp8(self, input: torch.Tensor) -> torch.Tensor:
        if self.input_amax is not None:  # a calibration pass (.calibrate): eager, never traced
            # on the input's device: with --lowvram the weight may wait on the CPU
            self.input_amax = torch.maximum(self.input_amax.to(input.device), input.detach().abs().amax().float())
        weight, bias = self._weight_and_bias(input)
        scale = _scale_on(getattr(self, "scale_weight", None), weight.device)
        problem = kernels.fp8_linear_problem(input, weight)  # tensor metadata only: traces under compile
        if problem is None and torch.is_grad_enabled() and input.requires_grad:
            problem = "gradients flow through the layer (training): fp8 kernels are inference-only"
        if problem is None:
            static = getattr(self, "scale_input", None)
            input_scale = None if static is None else _scale_on(static, weight.device)
            return kernels.checked_scaled_fp8_linear(input, weight, scale, bias, input_scale,
                                                     self.options.fp8_fast_accum)
        log_once("comfyx kernels: fp8 layers run dequantized, as ComfyUI runs them: %s", problem)
        dequantized = kernels.TensorCoreFP8Layout.dequantize(weight, scale, input.dtype)
        return torch.nn.functional.linear(input, dequantized, bias)

    def _forward_block_scaled(self, input: torch.Tensor) -> torch.Tensor:
        weight, bias = self._weight_and_bias(input)
        return blockscaled.linear(BLOCK_FORMATS[self.block_format], input, weight, self._block_scales(), bias,
                                  self.out_features, self.options.nvfp4_activation)

    def _weight_and_bias(self, input: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        """The stored weight (in its format) and the bias (in the input's dtype) on the input's device, with the
        patches ComfyUI applies per call (``--lowvram``: a LoRA's ``weight_function``; a stored weight patched
        whole is already the patched one).

        Dynamo traces this once per layer at every compile, warm restarts included (SDXL's UNet, compiled whole,
        has 700 fp8 layers), and each call and tensor operation in it costs trace time. So where the tensors
        are on the input's device already and nothing patches them per call, they are read as they are, as
        ComfyUI's own Linear does, without comfy.ops.cast_bias_weight (which would return them unchanged): with
        that and _scale_on's check, an fp8 layer's trace cost 39 k Python calls more than a bf16 one's instead
        of 54 k, SDXL's whole trace 18.7 s instead of 22.2 s on a 2-core CPU (bench/results/dynamo-trace.json).
        """
        if self.weight_function or self.bias_function or self.weight.device != input.device:
            import comfy.ops

            return comfy.ops.cast_bias_weight(self, input, dtype=self.weight.dtype, bias_dtype=input.dtype)
        bias = self.bias
        return self.weight, bias if bias is None or bias.dtype == input.dtype else bias.to(input.dtype)

    def _block_scales(self) -> dict[str, torch.Tensor]:
        names = (*BLOCK_FORMATS[self.block_format].scales, "input_scale")
        return {name: getattr(self, name) for name in names if getattr(self, name, None) is not None}

    # ---- ComfyUI's weight patching (LoRA) ----------------------------------------------------

    def convert_weight(self, weight: torch.Tensor, inplace: bool = False, **kwargs: Any) -> torch.Tensor:
        """The float weight a stored weight stands for (ComfyUI patches that, then calls set_weight).

        ComfyUI hands over the stored weight cast to float32: a block-scaled layer's data (packed
        e2m1 bytes, fp8 values) is exact in float32 and is cast back before it is dequantized.
        """
        if self.block_format is not None:
            return blockscaled.dequantize(BLOCK_FORMATS[self.block_format], weight.to(self.weight.dtype),
                                          self._block_scales(), self.out_features, self.in_features, weight.dtype)
        scale = getattr(self, "scale_weight", None)
        if scale is None:
            return weight
        scale = scale.to(device=weight.device, dtype=weight.dtype)
        return weight.mul_(scale) if inplace else weight * scale

    def set_weight(
        self, weight: torch.Tensor, inplace_update: bool = False, seed: int | None = None,
        return_weight: bool = False, **kwargs: Any,
    ) -> torch.Tensor | None:
        """Store a patched float weight in the layer's format at its existing scales (ComfyUI's unpatching
        restores the weight alone), rounded stochastically with ComfyUI's per-weight ``seed``."""
        import comfy.float

        if self.block_format is not None:
            weight = blockscaled.encode_at_scales(BLOCK_FORMATS[self.block_format], weight, self._block_scales(),
                                                  seed or 0)
        else:
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
    if scale.device == device and scale.dtype == torch.float32:  # no .to() for Dynamo to trace
        return scale
    return scale.to(device=device, dtype=torch.float32, non_blocking=True)


def operations_for(base: type, options: LayerOptions, *, keep_float_layers: bool = False) -> type:
    """ComfyUI's operations ``base`` with comfyx's quantized ``Linear``, multiplying as ``options`` say."""
    linear = type("Linear", (QuantizedLinear, base.Linear), {"keep_float_layers": keep_float_layers,
                                                             "options": options})
    return type(f"comfyx_{base.__name__}", (base,), {"Linear": linear})
