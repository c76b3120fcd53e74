"""Calibrated activation scales (``--fp8-activation-scale calibrated``): measured once, then fixed.

With a dynamic scale every fp8 Linear layer takes the amax of its activation on each call: one
more pass over the activation than a fixed scale needs, which inductor cannot fuse into the
norm or GEGLU before the layer. On SDXL's Linear layers (640/1280 features) that pass cost
21.2 ms against 16.2 ms per UNet call for a fixed scale (H100, ``bench/fp8_activation.py``): it
made comfyx's fp8 slower than ComfyUI's unscaled cast. A calibrated layer keeps the accuracy of
a scale fitted to its activations (the unscaled cast clamps Flux's activations at ±448) at the
speed of a fixed one.

On a model's first ``apply_model`` call the diffusion model runs once more, eagerly, before the
real call: every fp8 layer without a static scale records the amax of its input, and gets
``scale_input = amax * HEADROOM / 448``, the static scale checkpoints may carry. Later steps'
activations may be larger than the first step's: HEADROOM leaves them 16x the first step's amax
before they saturate, and since e4m3 is a floating-point format the cost is only at the small
end (values under 1/1800 of the first step's amax, rather than 1/29000, lose precision).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

import torch

from comfyx.comfyui.calls import fresh_call_arguments
from comfyx.kernels.ops import QuantizedLinear

log = logging.getLogger("comfyx.kernels")

HEADROOM = 16.0
WRAPPER_KEY = "comfyx.calibrate"


def pending_layers(diffusion_model: torch.nn.Module) -> list[QuantizedLinear]:
    """The fp8 layers of ``diffusion_model`` that scale their activation dynamically."""
    return [m for m in diffusion_model.modules() if isinstance(m, QuantizedLinear) and m.per_tensor_fp8
            and getattr(m, "scale_input", None) is None]


def calibrate(layers: list[QuantizedLinear], run: Callable[[], Any]) -> list[float]:
    """Give each of ``layers`` the static activation scale that ``run()`` (one forward) calls for; returns the
    scales given (a layer ``run`` never reached keeps its dynamic scale)."""
    for layer in layers:
        layer.input_amax = torch.zeros((), dtype=torch.float32)  # the layer's forward moves it to its input
    try:
        run()
        scales = []
        for layer in layers:
            if layer.input_amax.item() > 0:
                layer.set_input_scale(layer.input_amax * HEADROOM / 448.0)
                scales.append(layer.scale_input.item())
        return scales
    finally:
        for layer in layers:
            del layer.input_amax


class CalibrateOnFirstCall:
    """An APPLY_MODEL wrapper: on its first call, calibrates the model's pending fp8 layers (see above).

    Added before the compile wrapper, so that it runs outside it: the calibration pass calls the
    model's own ``_apply_model`` (no other wrapper, no compiled code), and compiling then traces
    layers whose scales are fixed.
    """

    def __init__(self) -> None:
        self.done = False

    def __call__(self, executor: Any, *args: Any, **kwargs: Any) -> Any:
        if not self.done:
            self.done = True
            base_model = executor.class_obj
            layers = pending_layers(base_model.diffusion_model)
            if layers:
                extra_args, extra_kwargs = fresh_call_arguments(args, kwargs)
                start = time.perf_counter()  # the pass ends in .item() reads: the device is done by then
                scales = calibrate(layers, lambda: executor.original(*extra_args, **extra_kwargs))
                log.info("comfyx quantize: %s: %d fp8 layers got calibrated activation scales (%.3g to %.3g); "
                         "%d not reached by the first step keep dynamic ones (the pass took %.2f s of the "
                         "first step)", type(base_model.diffusion_model).__name__, len(scales),
                         min(scales, default=0.0), max(scales, default=0.0), len(layers) - len(scales),
                         time.perf_counter() - start)
        return executor(*args, **kwargs)


def add_calibration(patcher: Any) -> None:
    """Calibrate ``patcher``'s pending fp8 layers on its first step (ComfyUI's wrapper mechanism)."""
    import comfy.patcher_extension

    patcher.add_wrapper_with_key(comfy.patcher_extension.WrappersMP.APPLY_MODEL, WRAPPER_KEY, CalibrateOnFirstCall())
