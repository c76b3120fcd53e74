"""Random-weight models at real architectures' widths, built from ComfyUI's own modules.

``comfyx bench`` needs no downloaded model: each architecture here is generated locally, with
seeded random weights, in the files and key layouts ComfyUI's loaders read (a checkpoint for
SD1.5/SDXL; diffusion model, text encoders and VAE files for Flux; an ESRGAN file for 4x
upscaling). Random weights make meaningless images but real work: the same layers, shapes
and dtypes as the real models, so speed, memory and the numeric differences between two ways
of running them are what they would be. Each diffusion model is also written in the formats of
:data:`FILE_FORMATS` (a bench configuration's ``KIND@FORMAT``): always as an fp8 file (every float
tensor cast to float8_e4m3fn, what ``--fp8_e4m3fn-unet`` keeps in memory and what plain fp8
checkpoint files hold), and, when asked for (``--file-format``: quantizing takes time), as
newer ComfyUI's ``comfy_quant`` NVFP4 or MXFP8 checkpoint whose quantized Linear layers are those
``comfyx serve --quantize nvfp4|mxfp8`` quantizes at load (its default ``--quantize-layers blocks``).

Run in a process of its own (it imports ComfyUI)::

    python -m comfyx.bench.models --comfyui DIR --out MODELS_DIR [--file-format nvfp4] sdxl flux

writes ``MODELS_DIR/{checkpoints,diffusion_models,text_encoders,vae,upscale_models}/…``,
``MODELS_DIR/extra_model_paths.yaml`` and ``MODELS_DIR/manifest.json``.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

FOLDERS = ("checkpoints", "diffusion_models", "text_encoders", "vae", "upscale_models", "loras")

# ComfyUI's model configs, at full width. SDXL's and Flux's depths are those ComfyUI detects;
# "sdxl-tiny" is the smallest SDXL-family UNet it recognises (Segmind Vega's depths).
SDXL_UNET = {
    "use_checkpoint": False, "image_size": 32, "out_channels": 4, "use_spatial_transformer": True, "legacy": False,
    "num_classes": "sequential", "adm_in_channels": 2816, "in_channels": 4, "model_channels": 320,
    "num_res_blocks": [2, 2, 2], "transformer_depth": [0, 0, 2, 2, 10, 10], "channel_mult": [1, 2, 4],
    "transformer_depth_middle": 10, "use_linear_in_transformer": True, "context_dim": 2048, "num_head_channels": 64,
    "transformer_depth_output": [0, 0, 0, 2, 2, 2, 10, 10, 10], "use_temporal_attention": False,
    "use_temporal_resblock": False,
}  # fmt: skip
VEGA_DEPTHS = {"transformer_depth": [0, 0, 1, 1, 2, 2], "transformer_depth_middle": 2,
               "transformer_depth_output": [0, 0, 0, 1, 1, 1, 2, 2, 2]}
FLUX = {
    "image_model": "flux", "in_channels": 16, "out_channels": 16, "patch_size": 2, "vec_in_dim": 768,
    "context_in_dim": 4096, "hidden_size": 3072, "mlp_ratio": 4.0, "num_heads": 24, "depth": 19,
    "depth_single_blocks": 38, "axes_dim": [16, 56, 56], "theta": 10000, "qkv_bias": True, "guidance_embed": True,
}  # fmt: skip
SD_VAE = {"double_z": True, "z_channels": 4, "resolution": 256, "in_channels": 3, "out_ch": 3, "ch": 128,
          "ch_mult": [1, 2, 4, 4], "num_res_blocks": 2, "attn_resolutions": [], "dropout": 0.0}
FLUX_VAE = {**SD_VAE, "z_channels": 16}


@dataclass(frozen=True)
class FileFormat:
    """A format the diffusion model is also written in: a configuration's ``KIND@NAME`` runs that file."""

    name: str
    what: str
    stock_loads: bool  # whether stock ComfyUI v0.3.64 loads it (else only comfyx does)
    on_demand: bool  # written only when a configuration asks for it (else always)


FILE_FORMATS = {fmt.name: fmt for fmt in (
    FileFormat("fp8", "every float tensor cast to float8_e4m3fn, as --fp8_e4m3fn-unet holds it", True, False),
    FileFormat("nvfp4", "the Linear layers --quantize nvfp4 quantizes at load (the transformer blocks') in a "
               "comfy_quant NVFP4 checkpoint", False, True),
    FileFormat("mxfp8", "the Linear layers --quantize mxfp8 quantizes at load (the transformer blocks') in a "
               "comfy_quant MXFP8 checkpoint", False, True),
)}
ON_DEMAND = tuple(name for name, fmt in FILE_FORMATS.items() if fmt.on_demand)
QUANTIZE_LAYERS = "blocks"  # --quantize-layers' default: the layers a comfy_quant file quantizes


@dataclass
class ModelSet:
    """What one architecture was written as: file names per ComfyUI model folder, and its shape."""

    arch: str
    files: dict[str, str] = field(default_factory=dict)  # role -> file name (in its folder)
    # file format (FILE_FORMATS) -> role -> the file of that role in that format (the diffusion model's)
    variants: dict[str, dict[str, str]] = field(default_factory=dict)
    description: str = ""
    parameters: dict[str, int] = field(default_factory=dict)  # role -> parameter count
    seconds: float = 0.0


# --------------------------------------------------------------------------- weights


def _device() -> str:
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def _generator(seed: int) -> tuple[Any, str]:
    import torch

    device = _device()
    return torch.Generator(device=device).manual_seed(seed), device


def random_like(module: Any, seed: int, dtype: Any, prefix: str = "") -> dict:
    """Seeded random tensors for ``module``'s state dict (built on the meta device: no memory).

    Norm weights are ones and biases zeros, so activations keep a sane scale; other weights are
    N(0, 0.02) in ``dtype``. Generated on the GPU where there is one (SDXL's 2.6 billion
    weights take seconds there).
    """
    import torch

    generator, device = _generator(seed)
    out = {}
    for name, tensor in module.state_dict().items():
        if not tensor.is_floating_point():
            out[prefix + name] = torch.zeros(tensor.shape, dtype=tensor.dtype)
            continue
        leaf = name.rsplit(".", 1)[-1]
        if ("norm" in name or leaf == "scale") and tensor.ndim == 1:
            value = torch.ones(tensor.shape, dtype=dtype) if leaf in ("weight", "scale") else torch.zeros(
                tensor.shape, dtype=dtype)
        elif leaf == "bias":
            value = torch.zeros(tensor.shape, dtype=dtype)
        else:
            value = (torch.randn(tensor.shape, generator=generator, device=device, dtype=torch.float32) * 0.02).to(
                dtype).cpu()
        out[prefix + name] = value
    return out


def _meta(build: Callable[[], Any]) -> Any:
    import torch

    with torch.device("meta"):
        return build()


def _count(state: dict, prefix: str = "") -> int:
    return sum(t.numel() for k, t in state.items() if k.startswith(prefix))


def to_fp8(state: dict, prefix: str = "") -> dict:
    """Every float tensor under ``prefix`` cast to float8_e4m3fn (saturating), the rest as is."""
    import torch

    fp8 = torch.float8_e4m3fn
    limit = torch.finfo(fp8).max
    return {k: v.clamp(-limit, limit).to(fp8) if k.startswith(prefix) and v.is_floating_point() else v
            for k, v in state.items()}


def quantized_layer_weights(state: dict, prefix: str, fmt: str) -> list[str]:
    """The keys of the Linear weights ``comfyx serve --quantize FMT`` quantizes (``--quantize-layers blocks``)
    in the diffusion model ComfyUI builds from ``state`` (its keys under ``prefix``): the same selection,
    comfyx.kernels.quantize's ``plan_for``, on that model built on the meta device."""
    import comfy.model_detection

    from comfyx.kernels.quantize import plan_for

    config = comfy.model_detection.model_config_from_unet(state, prefix)
    if config is None:
        raise ValueError(f"ComfyUI recognises no diffusion model under {prefix!r}")
    diffusion_model = config.get_model(state, prefix, device="meta").diffusion_model
    return [f"{prefix}{path}.weight" for path, _ in plan_for(diffusion_model, QUANTIZE_LAYERS, fmt).chosen]


def to_block_scaled(state: dict, fmt: str, prefix: str = "") -> dict:
    """``state`` with its diffusion model's (under ``prefix``) Linear layers that ``--quantize FMT`` picks in
    newer ComfyUI's ``comfy_quant`` NVFP4 / MXFP8 format (comfyx.testing.checkpoint's writer: comfyx_kernels'
    quantizers and checkpoint format), quantized one at a time on the GPU where there is one."""
    import contextlib

    from comfyx_kernels import use_backend

    from comfyx.testing.checkpoint import block_scaled_state_dict

    chosen = set(quantized_layer_weights(state, prefix, fmt))
    device = _device()
    # on the CPU, comfyx_kernels' eager quantizers: its Triton ones would run interpreted there (under
    # TRITON_INTERPRET=1, as CI runs) and take minutes for what takes eager seconds
    backend = use_backend("eager") if device == "cpu" else contextlib.nullcontext()
    out = {}
    with backend:
        for key, value in state.items():
            if key in chosen:
                layer = block_scaled_state_dict({key: value.to(device)}, fmt, prefix="")
                out.update({name: tensor.cpu() for name, tensor in layer.items()})
            else:
                out[key] = value
    return out


def in_format(state: dict, fmt: str, prefix: str) -> dict:
    """``state`` with its diffusion model (under ``prefix``) in file format ``fmt`` (FILE_FORMATS)."""
    if fmt == "fp8":
        return to_fp8(state, prefix)
    if fmt not in FILE_FORMATS:
        raise ValueError(f"unknown file format {fmt!r}; known: {', '.join(FILE_FORMATS)}")
    return to_block_scaled(state, fmt, prefix)


# --------------------------------------------------------------------------- architectures


def _sd_vae(seed: int, dtype: Any, config: dict, prefix: str) -> dict:
    from comfy.ldm.models.autoencoder import AutoencoderKL

    return random_like(_meta(lambda: AutoencoderKL(ddconfig=config, embed_dim=config["z_channels"])), seed, dtype,
                       prefix)


def sd15_tiny(seed: int) -> tuple[dict, str]:
    """comfyx.testing.checkpoint's tiny SD1.5 (one level of one block), in fp16."""
    from comfyx.testing.checkpoint import build_state_dict

    return build_state_dict(seed), "SD1.5 architecture, UNet reduced to one level of one block (fp16)"


def sdxl(seed: int, tiny: bool = False) -> tuple[dict, str]:
    import comfy.ops
    import torch
    from comfy import sdxl_clip, supported_models
    from comfy.ldm.modules.diffusionmodules.openaimodel import UNetModel

    config = {**SDXL_UNET, **(VEGA_DEPTHS if tiny else {})}
    unet = _meta(lambda: UNetModel(**config, operations=comfy.ops.disable_weight_init))
    state = random_like(unet, seed, torch.bfloat16, "model.diffusion_model.")
    clip = _meta(lambda: sdxl_clip.SDXLClipModel())
    model_config = supported_models.SDXL(config)
    state.update(model_config.process_clip_state_dict_for_saving(random_like(clip, seed + 1, torch.bfloat16)))
    state.update(_sd_vae(seed + 2, torch.bfloat16, SD_VAE, "first_stage_model."))
    depths = "Segmind Vega's transformer depths [0,0,1,1,2,2]" if tiny else "full depth"
    return state, f"SDXL architecture ({depths}), CLIP-L + CLIP-G, SDXL VAE; bf16"


def flux_parts(seed: int, double: int, single: int) -> dict[str, tuple[dict, str]]:
    """The diffusion model, CLIP-L, T5-XXL (fp8, as t5xxl_fp8_e4m3fn) and VAE files of a Flux-dev model."""
    import comfy.ops
    import torch
    from comfy import sd1_clip
    from comfy.ldm.flux.model import Flux
    from comfy.text_encoders.sd3_clip import T5XXLModel

    config = {**FLUX, "depth": double, "depth_single_blocks": single}
    model = _meta(lambda: Flux(**config, operations=comfy.ops.disable_weight_init))
    clip_l = _meta(lambda: sd1_clip.SDClipModel()).transformer
    t5 = _meta(lambda: T5XXLModel()).transformer
    return {
        "diffusion_model": (random_like(model, seed, torch.bfloat16),
                            f"Flux-dev widths, {double} double + {single} single blocks (Flux.1 has 19 + 38); bf16"),
        "clip_l": (random_like(clip_l, seed + 1, torch.bfloat16), "CLIP-L; bf16"),
        "t5xxl": (to_fp8(random_like(t5, seed + 2, torch.bfloat16)), "T5-XXL; float8_e4m3fn"),
        "vae": (_sd_vae(seed + 3, torch.bfloat16, FLUX_VAE, ""), "Flux VAE (16 channels); bf16"),
    }


def esrgan(seed: int, blocks: int, features: int) -> tuple[dict, str]:
    import torch
    from spandrel.architectures.ESRGAN import ESRGAN

    model = _meta(lambda: ESRGAN(num_filters=features, num_blocks=blocks, scale=4))
    return random_like(model, seed, torch.float32), f"ESRGAN 4x, {blocks} RRDB blocks of {features} features; fp32"


ARCHS = ("sd15-tiny", "sdxl-tiny", "sdxl", "flux-tiny", "flux", "esrgan-tiny", "esrgan")


def flux_blocks(text: str) -> tuple[int, int]:
    """``--flux-blocks``' value: "DOUBLE,SINGLE", two positive block counts."""
    try:
        double, single = (int(n) for n in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not DOUBLE,SINGLE (two block counts, e.g. 19,38)") from None
    if double < 1 or single < 1:
        raise argparse.ArgumentTypeError(f"{text!r}: a Flux model needs at least one block of each kind")
    return double, single


def diffusion_model_file(arch: str, flux_blocks: tuple[int, int]) -> str | None:
    """The file name of a Flux-architecture model set's diffusion model (its depth is in the name); None for
    the other architectures, whose files do not vary."""
    if arch not in ("flux-tiny", "flux"):
        return None
    double, single = (1, 1) if arch == "flux-tiny" else flux_blocks
    return f"comfyx-{arch}-{double}x{single}.safetensors"


def has_diffusion_model(arch: str) -> bool:
    """Whether ``arch``'s model set has a diffusion model (written in FILE_FORMATS too); the upscalers have not."""
    return not arch.startswith("esrgan")


def in_manifest(models_dir: Path, arch: str, flux_blocks: tuple[int, int], formats: tuple[str, ...] = ()) -> bool:
    """Whether ``models_dir`` holds ``arch``'s model set as asked (for Flux: at ``flux_blocks``' depth), its
    diffusion model in each of ``formats`` (FILE_FORMATS) too."""
    manifest = models_dir / "manifest.json"
    entry = json.loads(manifest.read_text()).get(arch) if manifest.exists() else None
    if entry is None or "variants" not in entry:  # (a manifest of before the file formats)
        return False
    if has_diffusion_model(arch) and any(fmt not in entry["variants"] for fmt in (*formats, "fp8")):
        return False
    wanted = diffusion_model_file(arch, flux_blocks)
    return wanted is None or entry["files"].get("diffusion_model") == wanted


def generate(arch: str, out: Path, seed: int = 0, flux_blocks: tuple[int, int] = (4, 8),
             formats: tuple[str, ...] = ()) -> ModelSet:
    """Write ``arch``'s files under ``out`` (skipping files that exist), its diffusion model in the file formats
    written always and in the on-demand ``formats`` too; returns what was written (and what was there)."""
    from safetensors.torch import load_file, save_file

    unknown = set(formats) - set(ON_DEMAND)
    if unknown:
        raise ValueError(f"file formats written on demand are {', '.join(ON_DEMAND)}, not {', '.join(unknown)}")
    started = time.monotonic()
    models = ModelSet(arch)

    def save(state: dict, path: Path) -> None:
        save_file(state, str(path.with_suffix(".partial")))
        path.with_suffix(".partial").replace(path)

    def write(role: str, folder: str, name: str, state: dict, description: str, variant_prefix: str | None = None):
        path = out / folder / name
        path.parent.mkdir(parents=True, exist_ok=True)
        models.files[role] = name
        models.parameters[role] = _count(state)
        existed = path.exists()
        if not existed:
            save(state, path)
        if variant_prefix is not None:
            source = None  # the variants are made from the bf16 file as it is on disk
            for fmt, spec in FILE_FORMATS.items():
                variant = path.with_name(f"{path.stem}-{fmt}{path.suffix}")
                if spec.on_demand and fmt not in formats and not variant.exists():
                    continue
                models.variants.setdefault(fmt, {})[role] = variant.name
                if not variant.exists():
                    if source is None:
                        source = load_file(str(path)) if existed else state
                    save(in_format(source, fmt, variant_prefix), variant)
        models.description += ("; " if models.description else "") + f"{role}: {description}"

    if arch in ("sd15-tiny", "sdxl-tiny", "sdxl"):
        state, description = sd15_tiny(seed) if arch == "sd15-tiny" else sdxl(seed, tiny=arch == "sdxl-tiny")
        write("checkpoint", "checkpoints", f"comfyx-{arch}.safetensors", state, description, "model.diffusion_model.")
    elif arch in ("flux-tiny", "flux"):
        double, single = (1, 1) if arch == "flux-tiny" else flux_blocks
        parts = flux_parts(seed, double, single)
        write("diffusion_model", "diffusion_models", diffusion_model_file(arch, flux_blocks),
              *parts["diffusion_model"], "")
        write("clip_l", "text_encoders", "comfyx-clip_l.safetensors", *parts["clip_l"])
        write("t5xxl", "text_encoders", "comfyx-t5xxl_fp8_e4m3fn.safetensors", *parts["t5xxl"])
        write("vae", "vae", "comfyx-flux-ae.safetensors", *parts["vae"])
    elif arch in ("esrgan-tiny", "esrgan"):
        blocks, features = (1, 16) if arch == "esrgan-tiny" else (23, 64)
        write("upscale_model", "upscale_models", f"comfyx-{arch}.safetensors", *esrgan(seed, blocks, features))
    else:
        raise ValueError(f"unknown architecture {arch!r}; known: {', '.join(ARCHS)}")
    models.seconds = round(time.monotonic() - started, 1)
    return models


def write_model_paths(out: Path) -> Path:
    """An ``--extra-model-paths-config`` file pointing ComfyUI's model folders into ``out``."""
    out.mkdir(parents=True, exist_ok=True)
    config = out / "extra_model_paths.yaml"
    folders = "".join(f"  {name}: {name}\n" for name in FOLDERS)
    config.write_text(f"comfyx_bench:\n  base_path: {out.resolve()}\n{folders}")
    for name in FOLDERS:
        (out / name).mkdir(parents=True, exist_ok=True)
    return config


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--comfyui", type=Path, required=True, help="ComfyUI checkout whose modules build them")
    parser.add_argument("--out", type=Path, required=True, help="models directory to write")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--flux-blocks", type=flux_blocks, default=(4, 8),
                        help="double,single blocks of 'flux' (default: 4,8)")
    parser.add_argument("--file-format", action="append", choices=ON_DEMAND, default=[],
                        help="also write each diffusion model in this format (repeatable): "
                        + "; ".join(f"{name}: {FILE_FORMATS[name].what}" for name in ON_DEMAND))
    parser.add_argument("archs", nargs="+", choices=ARCHS)
    args = parser.parse_args(argv)
    sys.path.insert(0, str(args.comfyui))
    import comfy.cli_args

    comfy.cli_args.args.cpu = True  # building weights needs ComfyUI's modules, not its device management
    write_model_paths(args.out)
    manifest_path = args.out / "manifest.json"
    manifest = json.loads(manifest_path.read_text()) if manifest_path.exists() else {}
    for arch in args.archs:
        models = generate(arch, args.out, args.seed, args.flux_blocks, tuple(args.file_format))
        manifest[arch] = asdict(models)
        print(f"{arch}: {models.description} ({models.seconds} s)", flush=True)
    manifest_path.write_text(json.dumps(manifest, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
