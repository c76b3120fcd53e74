"""ComfyUI nodes for the TPU backend (category ``advanced/tpu``).

They load in every backend, bound to the process's :class:`~comfyx.backends.tpu.TPUBackend`
(:func:`node_classes`); where the TPU backend is not running they say so in their text output
instead of failing the workflow.
"""

from __future__ import annotations

import json

from comfyx.backends import tpu
from comfyx.backends.tpu import TPUBackend

CATEGORY = "advanced/tpu"
_INACTIVE = "the TPU backend is not running (start with `comfyx serve --backend tpu`)"


class _TPUNode:
    backend: TPUBackend  # set by node_classes


class TPUManualWarmup(_TPUNode):
    """Compile a shape bucket before the first request: one real sampler step at these settings."""

    CATEGORY = CATEGORY
    FUNCTION = "warmup"
    RETURN_TYPES = ("MODEL", "STRING")
    RETURN_NAMES = ("model", "status")
    OUTPUT_NODE = True

    @classmethod
    def INPUT_TYPES(cls) -> dict:
        return {"required": {
            "model": ("MODEL",),
            "width": ("INT", {"default": 512, "min": 64, "max": 8192, "step": 8}),
            "height": ("INT", {"default": 512, "min": 64, "max": 8192, "step": 8}),
            "batch_size": ("INT", {"default": 1, "min": 1, "max": 64}),
            "cfg": ("FLOAT", {"default": 8.0, "min": 0.0, "max": 100.0, "step": 0.1}),
        }}

    def warmup(self, model, width: int, height: int, batch_size: int, cfg: float) -> dict:
        if not self.backend.active:
            status = f"nothing done: {_INACTIVE}"
        else:
            from comfyx.backends.tpu.warmup import warm_up

            status = warm_up(model, width, height, batch_size, cfg)
        return {"ui": {"text": [status]}, "result": (model, status)}


class TPUCompilationCache(_TPUNode):
    """Compilation statistics, clearing, or where the persistent cache lives."""

    CATEGORY = CATEGORY
    FUNCTION = "run"
    RETURN_TYPES = ("STRING",)
    RETURN_NAMES = ("text",)
    OUTPUT_NODE = True

    @classmethod
    def INPUT_TYPES(cls) -> dict:
        return {"required": {"action": (["stats", "clear", "info"], {"default": "stats"})}}

    @classmethod
    def IS_CHANGED(cls, action: str) -> float:
        return float("nan")  # counters change between runs: never cache

    def run(self, action: str) -> dict:
        backend = self.backend
        if action == "stats":
            data = backend.stats()
        elif action == "clear":
            data = backend.clear_cache() if backend.active else {"active": False, "reason": _INACTIVE}
        else:
            data = backend.persistent_cache_info() | {"settings": backend.settings.__dict__}
        text = json.dumps(data, indent=2, default=str)
        return {"ui": {"text": [text]}, "result": (text,)}


class TPUDeviceInfo(_TPUNode):
    """The XLA device, its runtime and memory, and the TPU options in force."""

    CATEGORY = CATEGORY
    FUNCTION = "info"
    RETURN_TYPES = ("STRING",)
    RETURN_NAMES = ("text",)
    OUTPUT_NODE = True

    @classmethod
    def INPUT_TYPES(cls) -> dict:
        return {"required": {}}

    @classmethod
    def IS_CHANGED(cls) -> float:
        return float("nan")

    def info(self) -> dict:
        if not self.backend.active:
            data = {"active": False, "reason": _INACTIVE}
        else:
            from comfyx.backends.tpu.device import memory_info, xla_device

            free, total = memory_info(xla_device())
            data = {"active": True, "device": tpu.describe(), "memory_free_bytes": free,
                    "memory_total_bytes": total, "settings": self.backend.settings.__dict__}
        text = json.dumps(data, indent=2, default=str)
        return {"ui": {"text": [text]}, "result": (text,)}


class TPUModelOptimization:
    """Per-model TPU options, overriding the command line's for runs with this model."""

    CATEGORY = CATEGORY
    FUNCTION = "apply"
    RETURN_TYPES = ("MODEL",)
    RETURN_NAMES = ("model",)

    @classmethod
    def INPUT_TYPES(cls) -> dict:
        choice = (["default", "on", "off"], {"default": "default"})
        return {"required": {
            "model": ("MODEL",),
            "autocast_dtype": (["default", "bfloat16", "float32"], {"default": "default"}),
            "compile_caching": choice,  # warm up (pre-compile) each new signature before its first run
            "shape_padding": choice,
            "pad_multiple": ("INT", {"default": 0, "min": 0, "max": 1024, "step": 8,
                                     "tooltip": "bucket size in pixels; 0 keeps the command line's"}),
        }}

    def apply(self, model, autocast_dtype: str, compile_caching: str, shape_padding: str,
              pad_multiple: int) -> tuple:
        from comfyx.backends.tpu.sampling import MODEL_OPTIONS_KEY

        overrides: dict = {}
        if autocast_dtype != "default":
            overrides["autocast_bf16"] = autocast_dtype == "bfloat16"
        if compile_caching != "default":
            overrides["warmup"] = compile_caching == "on"
        if shape_padding != "default":
            overrides["shape_padding"] = shape_padding == "on"
        if pad_multiple:
            overrides["pad_multiple_px"] = pad_multiple
        patched = model.clone()
        patched.model_options[MODEL_OPTIONS_KEY] = overrides
        return (patched,)


def node_classes(backend: TPUBackend) -> dict[str, type]:
    """The TPU nodes, bound to this process's TPU backend (ComfyUI makes node objects without arguments)."""
    bound = {name: type(cls.__name__, (cls,), {"backend": backend}) if issubclass(cls, _TPUNode) else cls
             for name, cls in NODE_CLASSES.items()}
    return bound


NODE_CLASSES = {
    "ComfyxTPUManualWarmup": TPUManualWarmup,
    "ComfyxTPUCompilationCache": TPUCompilationCache,
    "ComfyxTPUDeviceInfo": TPUDeviceInfo,
    "ComfyxTPUModelOptimization": TPUModelOptimization,
}
NODE_DISPLAY_NAME_MAPPINGS = {
    "ComfyxTPUManualWarmup": "TPU Manual Warmup",
    "ComfyxTPUCompilationCache": "TPU Compilation Cache",
    "ComfyxTPUDeviceInfo": "TPU Device Info",
    "ComfyxTPUModelOptimization": "TPU Model Optimization",
}
