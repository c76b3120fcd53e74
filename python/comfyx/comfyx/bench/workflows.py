"""The built-in benchmark workflows, in ComfyUI's API format, for the generated models.

A workflow is built for one model set (:mod:`comfyx.bench.models`) and one variant of it: the
bf16 files or the diffusion model's file in one of its other formats (fp8, NVFP4, MXFP8), with or
without ComfyUI's own ``TorchCompileModel`` node after the model loader. Everything else (prompt,
sampler, size, steps, seed) is the same in every configuration, so their images can be compared.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass

WORKFLOWS = ("txt2img", "img2img", "upscale")
SAMPLER_NODE = "sampler"
OUTPUT_NODE = "save"
POSITIVE = "a lighthouse on a cliff at dawn, oil painting"
NEGATIVE = "blurry, low quality"


@dataclass(frozen=True)
class Shape:
    width: int
    height: int
    steps: int
    cfg: float


def _files(models: dict, file_format: str | None) -> dict:
    """Role -> file name: the bf16 files (None), or the files of ``file_format`` (models.FILE_FORMATS)."""
    return models["variants"][file_format] if file_format else models["files"]


def _sd(models: dict, file_format: str | None, shape: Shape, seed: int, latent: list | None,
        denoise: float) -> dict:
    files = _files(models, file_format)
    prompt = {
        "loader": {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": files["checkpoint"]}},
        "positive": {"class_type": "CLIPTextEncode", "inputs": {"text": POSITIVE, "clip": ["loader", 1]}},
        "negative": {"class_type": "CLIPTextEncode", "inputs": {"text": NEGATIVE, "clip": ["loader", 1]}},
        SAMPLER_NODE: {"class_type": "KSampler", "inputs": {
            "model": ["loader", 0], "positive": ["positive", 0], "negative": ["negative", 0], "seed": seed,
            "steps": shape.steps, "cfg": shape.cfg, "sampler_name": "euler", "scheduler": "normal",
            "denoise": denoise, "latent_image": latent or ["latent", 0]}},
        "decode": {"class_type": "VAEDecode", "inputs": {"samples": [SAMPLER_NODE, 0], "vae": ["loader", 2]}},
        OUTPUT_NODE: {"class_type": "SaveImage", "inputs": {"images": ["decode", 0], "filename_prefix": "bench"}},
    }
    if latent is None:
        prompt["latent"] = {"class_type": "EmptyLatentImage",
                            "inputs": {"width": shape.width, "height": shape.height, "batch_size": 1}}
    return prompt


def _flux(models: dict, file_format: str | None, shape: Shape, seed: int, latent: list | None,
          denoise: float) -> dict:
    files = models["files"]
    unet = _files(models, file_format)["diffusion_model"]
    prompt = {
        "loader": {"class_type": "UNETLoader", "inputs": {"unet_name": unet, "weight_dtype": "default"}},
        # the text encoders on the CPU, as low-VRAM Flux setups run them: the GPU holds what is measured
        "clip": {"class_type": "DualCLIPLoader", "inputs": {
            "clip_name1": files["clip_l"], "clip_name2": files["t5xxl"], "type": "flux", "device": "cpu"}},
        "vae": {"class_type": "VAELoader", "inputs": {"vae_name": files["vae"]}},
        "positive": {"class_type": "CLIPTextEncode", "inputs": {"text": POSITIVE, "clip": ["clip", 0]}},
        "guidance": {"class_type": "FluxGuidance", "inputs": {"conditioning": ["positive", 0], "guidance": 3.5}},
        "negative": {"class_type": "ConditioningZeroOut", "inputs": {"conditioning": ["positive", 0]}},
        SAMPLER_NODE: {"class_type": "KSampler", "inputs": {
            "model": ["loader", 0], "positive": ["guidance", 0], "negative": ["negative", 0], "seed": seed,
            "steps": shape.steps, "cfg": 1.0, "sampler_name": "euler", "scheduler": "simple",
            "denoise": denoise, "latent_image": latent or ["latent", 0]}},
        "decode": {"class_type": "VAEDecode", "inputs": {"samples": [SAMPLER_NODE, 0], "vae": ["vae", 0]}},
        OUTPUT_NODE: {"class_type": "SaveImage", "inputs": {"images": ["decode", 0], "filename_prefix": "bench"}},
    }
    if latent is None:
        prompt["latent"] = {"class_type": "EmptySD3LatentImage",
                            "inputs": {"width": shape.width, "height": shape.height, "batch_size": 1}}
    return prompt


def build(workflow: str, arch: str, models: dict, *, file_format: str | None, compile_node: bool, shape: Shape,
          seed: int, input_image: str | None = None) -> dict:
    """The API-format prompt of ``workflow`` for architecture ``arch``'s generated ``models``, on the diffusion
    model's file in ``file_format`` (None: the bf16 files)."""
    if workflow == "upscale":
        return {
            "image": {"class_type": "LoadImage", "inputs": {"image": input_image}},
            "loader": {"class_type": "UpscaleModelLoader", "inputs": {"model_name": models["files"]["upscale_model"]}},
            SAMPLER_NODE: {"class_type": "ImageUpscaleWithModel",
                           "inputs": {"upscale_model": ["loader", 0], "image": ["image", 0]}},
            OUTPUT_NODE: {"class_type": "SaveImage",
                          "inputs": {"images": [SAMPLER_NODE, 0], "filename_prefix": "bench"}},
        }
    if workflow not in WORKFLOWS:
        raise ValueError(f"unknown workflow {workflow!r}; built in: {', '.join(WORKFLOWS)}")
    family = _flux if arch.startswith("flux") else _sd
    latent, denoise, extra = None, 1.0, {}
    if workflow == "img2img":
        vae = ["vae", 0] if family is _flux else ["loader", 2]
        extra = {"image": {"class_type": "LoadImage", "inputs": {"image": input_image}},
                 "encode": {"class_type": "VAEEncode", "inputs": {"pixels": ["image", 0], "vae": vae}}}
        latent, denoise = ["encode", 0], 0.6
    prompt = {**family(models, file_format, shape, seed, latent, denoise), **extra}
    if compile_node:
        prompt = with_compile_node(prompt)
    return prompt


def with_compile_node(prompt: dict) -> dict:
    """``prompt`` with ComfyUI's own TorchCompileModel between the model loader and the sampler."""
    prompt = copy.deepcopy(prompt)
    prompt["torch_compile"] = {"class_type": "TorchCompileModel",
                               "inputs": {"model": ["loader", 0], "backend": "inductor"}}
    prompt[SAMPLER_NODE]["inputs"]["model"] = ["torch_compile", 0]
    return prompt


def with_seed(prompt: dict, seed: int) -> dict:
    """``prompt`` with every sampler seed set to ``seed`` (a user's workflow: any KSampler-like node)."""
    prompt = copy.deepcopy(prompt)
    for node in prompt.values():
        inputs = node.get("inputs", {})
        for key in ("seed", "noise_seed"):
            if isinstance(inputs.get(key), int):
                inputs[key] = seed
    return prompt
