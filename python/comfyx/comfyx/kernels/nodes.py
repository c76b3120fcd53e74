"""The Quantize Model (comfyx) node, bound to the process's layer settings (``--fp8-fast-accum``,
``--nvfp4-activation``, ``--fp8-activation-scale``)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from comfyx.kernels import QUANTIZE_FORMATS as FORMATS
from comfyx.kernels import QUANTIZE_LAYERS as LAYERS
from comfyx.kernels import LayerOptions


class QuantizeModel:
    """A copy of a model whose Linear layers are fp8, NVFP4 or MXFP8; the model other nodes use is left as it is."""

    options: LayerOptions  # set by node_classes
    activation_scale: str
    calibration: Path | None = None  # where calibrated activation scales are kept (None: not kept)

    CATEGORY = "comfyx/kernels"
    FUNCTION = "quantize"
    RETURN_TYPES = ("MODEL",)
    DESCRIPTION = (
        "Quantizes the diffusion model's Linear layers for comfyx's kernels. fp8: a per-tensor scale per layer, "
        "half the weight memory, fp8 tensor-core GEMMs on sm_89+ GPUs. nvfp4: 4-bit values with an fp8 scale "
        "per 16 (about 0.28x the bf16 weight memory; lossier), kept 4-bit in memory on every GPU. mxfp8: fp8 "
        "values with a power-of-two scale per 32. Where no kernel runs (a CPU, older GPUs) the layers are "
        "dequantized per step, as ComfyUI runs fp8 weights. LoRAs applied after this node are merged into the "
        "quantized weights at their scales."
    )

    @classmethod
    def INPUT_TYPES(cls) -> dict:
        return {
            "required": {
                "model": ("MODEL",),
                "format": (list(FORMATS), {"default": FORMATS[0]}),
                "layers": (list(LAYERS), {
                    "default": LAYERS[0],
                    "tooltip": "blocks: the Linear layers of the transformer blocks (embedders and the final layer "
                    "stay as they are, for accuracy); all: every Linear layer",
                }),
            }
        }

    def quantize(self, model: Any, format: str, layers: str) -> tuple[Any]:
        from comfyx.kernels.quantize import quantized_clone

        clone = quantized_clone(model, layers, format, self.options)
        if self.activation_scale == "calibrated":
            from comfyx.kernels.calibrate import CalibrationStore, add_calibration

            add_calibration(clone, None if self.calibration is None else CalibrationStore(self.calibration))
        return (clone,)


def node_classes(options: LayerOptions, fp8_activation_scale: str, calibration: Path | None) -> dict[str, type]:
    """Quantize Model bound to the process's fp8 settings and calibration store (ComfyUI makes node objects
    without arguments)."""
    return {"ComfyxQuantizeModel": type("QuantizeModel", (QuantizeModel,), {
        "options": options, "activation_scale": fp8_activation_scale, "calibration": calibration})}


NODE_CLASSES = {"ComfyxQuantizeModel": QuantizeModel}
NODE_DISPLAY_NAME_MAPPINGS = {"ComfyxQuantizeModel": "Quantize Model (comfyx)"}
