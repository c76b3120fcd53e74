"""The ComfyUI nodes: settings, apply, and the metrics of what ran.

Apply Torch Compile is bound to the process's compile caches (:func:`node_classes`), chosen at
start-up: a workflow cannot move them.
"""

from __future__ import annotations

import json
from typing import Any

from comfyx.compile.settings import BACKENDS, MAX_WARMUP_RUNS, MODES, CompileSettings
from comfyx.paths import CompileCaches

CATEGORY = "comfyx/compile"


class TorchCompileSpeedSettings:
    """Compile settings as a ``WANCOMPILEARGS`` dict (also accepted by WanVideoWrapper's loader)."""

    CATEGORY = CATEGORY
    FUNCTION = "settings"
    RETURN_TYPES = ("WANCOMPILEARGS",)
    RETURN_NAMES = ("torch_compile_args",)

    @classmethod
    def INPUT_TYPES(cls) -> dict:
        d = CompileSettings()
        return {
            "required": {
                "backend": (list(BACKENDS), {"default": d.backend}),
                "fullgraph": ("BOOLEAN", {"default": d.fullgraph}),
                "mode": (list(MODES), {"default": d.mode}),
                "dynamic": (
                    "BOOLEAN",
                    {
                        "default": d.dynamic,
                        "tooltip": "off: the first resolution compiles specialised, the first change of "
                        "resolution compiles one shape-generic graph; on: shape-generic from the start",
                    },
                ),
                "dynamo_cache_size_limit": ("INT", {"default": d.dynamo_cache_size_limit, "min": 1, "max": 65536}),
                "compile_transformer_blocks_only": ("BOOLEAN", {"default": d.compile_transformer_blocks_only}),
                "reuse_if_similar": ("BOOLEAN", {"default": d.reuse_if_similar}),
                "experimental_ptx": (
                    "BOOLEAN",
                    {
                        "default": d.experimental_ptx,
                        "tooltip": "run a warmup forward that fills the Triton/PTX cache, and log what it cached",
                    },
                ),
                "ptx_fast_math": ("BOOLEAN", {"default": d.ptx_fast_math}),
                "warmup_runs": ("INT", {"default": d.warmup_runs, "min": 0, "max": MAX_WARMUP_RUNS}),
            },
            "optional": {
                "compile_unet_regions": ("BOOLEAN", {
                    "default": d.compile_unet_regions,
                    "tooltip": "a UNet (SD1.5, SDXL) compiles as its spatial transformers and ResNet blocks instead "
                    "of whole: a restart's first step 11.7 s instead of 36.2 s for SDXL on an H100, sampling 0.83x "
                    "the speed",
                }),
                "compile_trace_cache": ("BOOLEAN", {
                    "default": d.compile_trace_cache,
                    "tooltip": "the compiled modules (a UNet whole, a DiT's blocks) save Dynamo's traces beside the "
                    "compile caches, so a "
                    "restart loads it instead of tracing the model again",
                }),
                "dynamo_recompile_limit": ("INT", {"default": d.dynamo_recompile_limit, "min": 1, "max": 65536}),
                "ptx_cache_dir": ("STRING", {
                    "default": d.ptx_cache_dir,
                    "tooltip": "leave empty: Triton's cache directory is chosen when comfyx starts (--cache-dir); "
                    "another directory here is an error",
                }),
                "force_parameter_static_shapes": ("BOOLEAN", {"default": d.force_parameter_static_shapes}),
                "allow_unmerged_lora_compile": ("BOOLEAN", {"default": d.allow_unmerged_lora_compile}),
            },
        }

    def settings(self, **inputs: Any) -> tuple[dict]:
        return (CompileSettings(**inputs).to_wan_args(),)


class ApplyTorchCompile:
    """Compile a model's diffusion model (or its transformer blocks) for sampling."""

    caches: CompileCaches  # set by node_classes
    CATEGORY = CATEGORY
    FUNCTION = "apply"
    RETURN_TYPES = ("MODEL",)

    @classmethod
    def INPUT_TYPES(cls) -> dict:
        return {"required": {"model": ("MODEL",), "torch_compile_args": ("WANCOMPILEARGS",)}}

    def apply(self, model: Any, torch_compile_args: dict) -> tuple[Any]:
        from comfyx.compile.apply import apply_compile

        return (apply_compile(model, CompileSettings.from_wan_args(torch_compile_args), self.caches),)


class TorchCompileStats:
    """The compile metrics of a compiled model, read after sampling (wire ``after`` to its output)."""

    CATEGORY = CATEGORY
    FUNCTION = "stats"
    RETURN_TYPES = ("STRING",)
    RETURN_NAMES = ("stats_json",)
    OUTPUT_NODE = True

    @classmethod
    def INPUT_TYPES(cls) -> dict:
        return {"required": {"model": ("MODEL",)}, "optional": {"after": ("*",)}}

    @classmethod
    def IS_CHANGED(cls, **inputs: Any) -> float:
        return float("nan")  # the metrics grow with every run: never cache

    @classmethod
    def VALIDATE_INPUTS(cls, input_types: dict) -> bool:
        return True  # "after" takes any type; it only orders this node after sampling

    def stats(self, model: Any, after: Any = None) -> dict:
        from comfyx.compile.apply import compiled_model_of

        compiled = compiled_model_of(model)
        if compiled is None:
            raise ValueError("this model was not compiled by Apply Torch Compile")
        summary = compiled.metrics.summary()
        return {"ui": {"text": [compiled.metrics.text()], "stats": [summary]}, "result": (json.dumps(summary),)}


def node_classes(caches: CompileCaches) -> dict[str, type]:
    """The compile nodes, Apply Torch Compile bound to this process's caches (ComfyUI makes node objects
    without arguments)."""
    return {**NODE_CLASSES, "ComfyxApplyTorchCompile": type("ApplyTorchCompile", (ApplyTorchCompile,),
                                                            {"caches": caches})}


NODE_CLASSES = {
    "ComfyxTorchCompileSpeedSettings": TorchCompileSpeedSettings,
    "ComfyxApplyTorchCompile": ApplyTorchCompile,
    "ComfyxTorchCompileStats": TorchCompileStats,
}
NODE_DISPLAY_NAME_MAPPINGS = {
    "ComfyxTorchCompileSpeedSettings": "Torch Compile Speed Settings",
    "ComfyxApplyTorchCompile": "Apply Torch Compile",
    "ComfyxTorchCompileStats": "Torch Compile Stats",
}
