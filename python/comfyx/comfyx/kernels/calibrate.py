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

The scales are kept on disk (:class:`CalibrationStore`, under comfyx's cache directory), keyed by
the layers' fp8 weights, so that a restarted server gives a model the scales its first run
measured instead of running the pass again: it is part of a warm restart's first step (Flux on an
H100: 0.54 s of 4.97 s, bench/results/e2e.md), which comfyx's compile caches otherwise shorten.
A server keeps a model's first scales for every later prompt; a restart then behaves as if it had
not stopped.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from comfyx.comfyui.calls import fresh_call_arguments
from comfyx.kernels.ops import QuantizedLinear

log = logging.getLogger("comfyx.kernels")

HEADROOM = 16.0
WRAPPER_KEY = "comfyx.calibrate"
STORE_VERSION = 1  # of the stored files and of what their key covers
SAMPLED_BYTES = 4096  # of each weight, evenly spread, in the key (with every layer's name, shape and scale)


def pending_layers(diffusion_model: torch.nn.Module) -> list[tuple[str, QuantizedLinear]]:
    """The fp8 layers of ``diffusion_model`` that scale their activation dynamically, with their names."""
    return [(name, m) for name, m in diffusion_model.named_modules() if isinstance(m, QuantizedLinear)
            and m.per_tensor_fp8 and getattr(m, "scale_input", None) is None]


def calibrate(named_layers: list[tuple[str, QuantizedLinear]], run: Callable[[], Any]) -> dict[str, float]:
    """Give each of ``named_layers`` the static activation scale that ``run()`` (one forward) calls for; returns
    the scales given by layer name (a layer ``run`` never reached keeps its dynamic scale)."""
    for _, layer in named_layers:
        layer.input_amax = torch.zeros((), dtype=torch.float32)  # the layer's forward moves it to its input
    try:
        run()
        scales = {}
        for name, layer in named_layers:
            if layer.input_amax.item() > 0:
                layer.set_input_scale(layer.input_amax * HEADROOM / 448.0)
                scales[name] = layer.scale_input.item()
        return scales
    finally:
        for _, layer in named_layers:
            del layer.input_amax


@dataclass(frozen=True)
class CalibrationStore:
    """Calibrated activation scales on disk, one JSON file per model: {layer name: scale}."""

    directory: Path

    def path(self, key: str) -> Path:
        return self.directory / f"{key}.json"

    def load(self, key: str) -> dict[str, float] | None:
        """The scales stored under ``key``, or None (none stored, or a file that cannot be read: logged)."""
        path = self.path(key)
        try:
            data = json.loads(path.read_text())
            if data.get("version") != STORE_VERSION:
                return None
            return {str(name): float(scale) for name, scale in data["scales"].items()}
        except FileNotFoundError:
            return None
        except (OSError, ValueError, KeyError, TypeError, AttributeError) as err:
            log.warning("comfyx quantize: ignoring the stored activation scales %s (%s); calibrating again",
                        path, err)
            return None

    def save(self, key: str, model: str, scales: dict[str, float]) -> None:
        """Store ``scales`` under ``key`` (written whole or not at all; a failure is logged, not raised)."""
        path = self.path(key)
        try:
            self.directory.mkdir(parents=True, exist_ok=True)
            with tempfile.NamedTemporaryFile("w", dir=self.directory, suffix=".tmp", delete=False) as tmp:
                json.dump({"version": STORE_VERSION, "model": model, "headroom": HEADROOM, "scales": scales}, tmp)
            os.replace(tmp.name, path)
        except OSError as err:
            log.warning("comfyx quantize: could not store the calibrated activation scales in %s: %s", path, err)


def weights_key(named_layers: list[tuple[str, QuantizedLinear]], model: str) -> str | None:
    """A key for ``named_layers``' fp8 weights as the calibration pass will see them: each layer's name, shape,
    weight scale and SAMPLED_BYTES of its weight, evenly spread (a LoRA merged into the weights changes them).
    None where a layer's weight is patched per call (``--lowvram`` LoRA): the stored weight is not what runs."""
    if any(layer.weight_function or layer.bias_function for _, layer in named_layers):
        return None
    digest = hashlib.sha256(f"v{STORE_VERSION}|{model}|{HEADROOM}".encode())
    samples, scales = [], []
    for name, layer in named_layers:
        weight = layer.weight.detach()
        digest.update(f"|{name}|{tuple(weight.shape)}|{weight.dtype}".encode())
        flat = weight.reshape(-1).view(torch.uint8)
        samples.append(flat[:: max(flat.numel() // SAMPLED_BYTES, 1)][:SAMPLED_BYTES])
        scale = getattr(layer, "scale_weight", None)
        scales.append(torch.ones((), device=weight.device) if scale is None else scale.detach().float().reshape(()))
    if samples:  # gathered where the weights are, then one copy to the host
        device = samples[0].device
        digest.update(torch.cat([s.to(device) for s in samples]).cpu().numpy().tobytes())
        digest.update(torch.stack([s.to(device) for s in scales]).cpu().numpy().tobytes())
    return digest.hexdigest()[:32]


class CalibrateOnFirstCall:
    """An APPLY_MODEL wrapper: on its first call, calibrates the model's pending fp8 layers (see above), or gives
    them the scales ``store`` holds for their weights.

    Added before the compile wrapper, so that it runs outside it: the calibration pass calls the
    model's own ``_apply_model`` (no other wrapper, no compiled code), and compiling then traces
    layers whose scales are fixed.
    """

    def __init__(self, store: CalibrationStore | None = None) -> None:
        self.done = False
        self.store = store

    def __call__(self, executor: Any, *args: Any, **kwargs: Any) -> Any:
        if not self.done:
            self.done = True
            self._calibrate(executor, args, kwargs)
        return executor(*args, **kwargs)

    def _calibrate(self, executor: Any, args: tuple, kwargs: dict) -> None:
        diffusion_model = executor.class_obj.diffusion_model
        named = pending_layers(diffusion_model)
        if not named:
            return
        model = type(diffusion_model).__name__
        key = None if self.store is None else weights_key(named, model)
        stored = None if key is None else self.store.load(key)
        if stored is not None:
            given = []
            for name, layer in named:
                if name in stored:
                    layer.set_input_scale(torch.tensor(stored[name], dtype=torch.float32))
                    given.append(stored[name])
            log.info("comfyx quantize: %s: %d fp8 layers took the activation scales calibrated before for the same "
                     "weights (%.3g to %.3g, %s); %d keep dynamic ones", model, len(given), min(given, default=0.0),
                     max(given, default=0.0), self.store.path(key), len(named) - len(given))
            return
        extra_args, extra_kwargs = fresh_call_arguments(args, kwargs)
        start = time.perf_counter()  # the pass ends in .item() reads: the device is done by then
        scales = calibrate(named, lambda: executor.original(*extra_args, **extra_kwargs))
        log.info("comfyx quantize: %s: %d fp8 layers got calibrated activation scales (%.3g to %.3g); "
                 "%d not reached by the first step keep dynamic ones (the pass took %.2f s of the "
                 "first step)", model, len(scales), min(scales.values(), default=0.0),
                 max(scales.values(), default=0.0), len(named) - len(scales), time.perf_counter() - start)
        if key is not None:
            self.store.save(key, model, scales)


def add_calibration(patcher: Any, store: CalibrationStore | None = None) -> None:
    """Calibrate ``patcher``'s pending fp8 layers on its first step (ComfyUI's wrapper mechanism), with the
    scales kept in ``store`` where given."""
    import comfy.patcher_extension

    patcher.add_wrapper_with_key(comfy.patcher_extension.WrappersMP.APPLY_MODEL, WRAPPER_KEY,
                                 CalibrateOnFirstCall(store))
