"""A tiny random-weight checkpoint of the SD1.5 architecture, built with ComfyUI's own modules.

ComfyUI recognises SD1.5 from a state dict's keys and shapes, and its SD1.5 match
only fixes the UNet's base width (320) and context width (768). Depth is free, so the
UNet here has one level of one block: ComfyUI loads it as SD1.5 and a
txt2img run takes about a second on a CPU. The text encoder and VAE have fixed shapes
in ComfyUI and are full size. Weights are seeded, so the file is the same every time.

Run as ``python -m comfyx.testing.checkpoint --comfyui DIR OUT.safetensors``: it
imports ComfyUI, so it belongs in a process of its own.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

# One level of one res block with attention; the rest is SD1.5's.
TINY_UNET = {
    "image_size": 32,
    "in_channels": 4,
    "out_channels": 4,
    "model_channels": 320,
    "num_res_blocks": [1],
    "channel_mult": [1],
    "transformer_depth": [1],
    "transformer_depth_middle": 1,
    "transformer_depth_output": [1, 1],
    "use_spatial_transformer": True,
    "legacy": False,
    "context_dim": 768,
    "num_heads": 8,
    "use_linear_in_transformer": False,
}
SD_VAE = {"double_z": True, "z_channels": 4, "resolution": 256, "in_channels": 3, "out_ch": 3, "ch": 128,
          "ch_mult": [1, 2, 4, 4], "num_res_blocks": 2, "attn_resolutions": [], "dropout": 0.0}


def build_state_dict(seed: int = 0) -> dict:
    """The checkpoint's tensors (fp16), with the key prefixes of an SD1.5 checkpoint."""
    import comfy.cli_args
    import torch

    comfy.cli_args.args.cpu = True  # building weights needs no accelerator; don't probe for one
    import comfy.ops
    from comfy.ldm.models.autoencoder import AutoencoderKL
    from comfy.ldm.modules.diffusionmodules.openaimodel import UNetModel
    from comfy.sd1_clip import SDClipModel

    parts = {
        "model.diffusion_model.": UNetModel(**TINY_UNET, operations=comfy.ops.disable_weight_init),
        "cond_stage_model.": SDClipModel(),
        "first_stage_model.": AutoencoderKL(ddconfig=SD_VAE, embed_dim=4),
    }
    generator = torch.Generator().manual_seed(seed)
    state = {}
    for prefix, module in parts.items():
        for name, tensor in module.state_dict().items():
            state[prefix + name] = _seeded_like(name, tensor, generator)
    return state


def _seeded_like(name: str, tensor, generator):
    import torch

    if not tensor.is_floating_point():
        return tensor.clone()
    leaf = name.rsplit(".", 1)[-1]
    if "norm" in name and tensor.ndim == 1:  # normalisation layers: identity scale, zero shift
        return (torch.ones if leaf == "weight" else torch.zeros)(tensor.shape, dtype=torch.float16)
    if leaf == "bias":
        return torch.zeros(tensor.shape, dtype=torch.float16)
    return (torch.randn(tensor.shape, generator=generator) * 0.02).to(torch.float16)


def write_checkpoint(comfyui: Path, out: Path, seed: int = 0, fp8: str | None = None) -> Path:
    """Build the checkpoint with the ComfyUI at ``comfyui`` and write it atomically to ``out``."""
    sys.path.insert(0, str(comfyui))
    from safetensors.torch import save_file

    out.parent.mkdir(parents=True, exist_ok=True)
    partial = out.with_name(out.name + ".partial")
    state = build_state_dict(seed)
    save_file(state if fp8 is None else fp8_state_dict(state, fp8), str(partial))
    partial.replace(out)
    return out


FP8_FORMATS = ("scaled_fp8", "comfy_quant", "fp8")
DIFFUSION_PREFIX = "model.diffusion_model."


def fp8_state_dict(state: dict, fmt: str, prefix: str = DIFFUSION_PREFIX) -> dict:
    """``state`` with its diffusion model in an fp8 format ComfyUI reads.

    ``scaled_fp8`` (v0.3.64) and ``comfy_quant`` (newer ComfyUI) quantize the Linear weights
    (the 2-D ones) with a per-tensor scale each; ``fp8`` casts every float tensor of the
    diffusion model to float8_e4m3fn without a scale, as ``--fp8_e4m3fn-unet`` keeps it.
    """
    from comfyx_kernels.checkpoint import to_checkpoint
    from comfyx_kernels.quantized_tensor import QuantizedTensor

    from comfyx.bench.models import to_fp8

    if fmt not in FP8_FORMATS:
        raise ValueError(f"unknown fp8 format {fmt!r}; known: {', '.join(FP8_FORMATS)}")
    if fmt == "fp8":
        return to_fp8(state, prefix)
    linear = {key for key, value in state.items() if key.startswith(prefix) and key.endswith(".weight")
              and value.ndim == 2}
    quantized = {key: QuantizedTensor.from_float(value.float()) if key in linear else value
                 for key, value in state.items()}
    return to_checkpoint(quantized, fmt, prefix)


BLOCK_FORMATS = {"nvfp4": "TensorCoreNVFP4Layout", "mxfp8": "TensorCoreMXFP8Layout"}


def block_scaled_state_dict(state: dict, fmt: str, prefix: str = DIFFUSION_PREFIX) -> dict:
    """``state`` with its diffusion model's Linear weights (the 2-D ones) in newer ComfyUI's ``comfy_quant``
    NVFP4 or MXFP8 format, as comfy-kitchen writes it (padded to whole blocks, swizzled block scales)."""
    from comfyx_kernels.checkpoint import to_checkpoint
    from comfyx_kernels.quantized_tensor import QuantizedTensor

    if fmt not in BLOCK_FORMATS:
        raise ValueError(f"unknown block-scaled format {fmt!r}; known: {', '.join(BLOCK_FORMATS)}")
    quantized = {key: QuantizedTensor.from_float(value.float(), BLOCK_FORMATS[fmt])
                 if key.startswith(prefix) and key.endswith(".weight") and value.ndim == 2 else value
                 for key, value in state.items()}
    return to_checkpoint(quantized, "comfy_quant", prefix)


def lora_state_dict(state: dict, layers: list[str], rank: int = 4, scale: float = 0.05, seed: int = 1) -> dict:
    """A LoRA (ComfyUI's generic ``<layer>.lora_up/lora_down.weight`` keys) for Linear ``layers`` of ``state``.

    ``layers`` are keys without ``.weight`` as the model holds them (``diffusion_model.…``); the
    checkpoint stores them under ``model.``.
    """
    import torch

    generator = torch.Generator().manual_seed(seed)
    out = {}
    for layer in layers:
        n, k = state[f"model.{layer}.weight"].shape
        out[f"{layer}.lora_up.weight"] = (torch.randn(n, rank, generator=generator) * scale).half()
        out[f"{layer}.lora_down.weight"] = (torch.randn(rank, k, generator=generator) * scale).half()
        out[f"{layer}.alpha"] = torch.tensor(float(rank))
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--comfyui", type=Path, required=True, help="ComfyUI checkout whose modules build it")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--fp8", choices=FP8_FORMATS, help="write the diffusion model in this fp8 format")
    parser.add_argument("out", type=Path, help="output .safetensors file")
    args = parser.parse_args(argv)
    print(write_checkpoint(args.comfyui, args.out, args.seed, args.fp8))
    return 0


if __name__ == "__main__":
    sys.exit(main())
