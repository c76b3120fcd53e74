"""The compile nodes on real ComfyUI in one process, as a test scenario; prints a JSON report.

Run by ``test_comfyui_compile.py`` in processes of their own (ComfyUI's modules hold global
state, and the warm-cache check needs a second process):

    python scenario.py --comfyui DIR --cache-dir DIR full   # eager vs compiled sampling, reuse, config change, ...
    python scenario.py --comfyui DIR --cache-dir DIR warm   # the first compiled sampling only (same cache dir)
    python scenario.py --comfyui DIR --cache-dir DIR restart --latent OUT.pt   # speed mode on a tiny SDXL UNet
    python scenario.py --comfyui DIR --cache-dir DIR resolutions [--regions]   # three latent sizes, then the first
    python scenario.py --comfyui DIR --cache-dir DIR flux-restart --latent OUT.pt   # a tiny Flux, per block

(``--no-trace-cache``: restart and resolutions without saved traces.)

The cache directory is comfyx's ``--cache-dir``: its compile caches are resolved and handed to torch
at the start, as ``comfyx serve`` does.

``full`` and ``warm`` (Dynamo tracing at each start: no saved traces, but where ``full`` says so) sample the
tiny SD1.5-architecture UNet of ``comfyx.testing.checkpoint``;
``restart`` samples a tiny SDXL-architecture UNet (ComfyUI's SDXL class) with attention run
as ComfyUI runs it on CUDA. All fp32 on the CPU, sampled by ComfyUI's own KSampler code
(``nodes.common_ksampler``).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import Any

SETTINGS = {
    "backend": "inductor", "fullgraph": False, "mode": "default", "dynamic": False, "dynamo_cache_size_limit": 64,
    "compile_transformer_blocks_only": True, "reuse_if_similar": True, "experimental_ptx": False,
    "ptx_fast_math": False, "warmup_runs": 1, "compile_trace_cache": False,
}  # fmt: skip
LATENT = (1, 4, 8, 8)
RESOLUTIONS = ((8, 8), (12, 12), (16, 8))  # latent height, width
# SDXL's UNet layout (label embedding of the 2816 size-and-crop conditioning, linear
# transformer projections, a middle transformer) at one level of width 64: one attention
# head, as ComfyUI fixes SD-family heads at 64 channels
TINY_SDXL_UNET = {
    "use_checkpoint": False, "image_size": 32, "out_channels": 4, "use_spatial_transformer": True, "legacy": False,
    "num_classes": "sequential", "adm_in_channels": 2816, "in_channels": 4, "model_channels": 64,
    "num_res_blocks": [1], "transformer_depth": [1], "channel_mult": [1], "transformer_depth_middle": 1,
    "use_linear_in_transformer": True, "context_dim": 64, "transformer_depth_output": [1, 1],
    "use_temporal_attention": False, "use_temporal_resblock": False,
}  # fmt: skip
# Flux's layout (double and single stream blocks, RoPE over three axes) at width 64: two heads of 32 channels
TINY_FLUX = {
    "image_model": "flux", "in_channels": 16, "out_channels": 16, "patch_size": 2, "vec_in_dim": 16,
    "context_in_dim": 32, "hidden_size": 64, "mlp_ratio": 4.0, "num_heads": 2, "depth": 2, "depth_single_blocks": 2,
    "axes_dim": [8, 12, 12], "theta": 10000, "qkv_bias": True, "guidance_embed": True,
}  # fmt: skip


def _import_comfyui(comfyui: Path) -> None:
    sys.path.insert(0, str(comfyui))
    import comfy.cli_args

    comfy.cli_args.args.cpu = True
    # ComfyUI's CPU default (split attention) asks psutil for free memory inside the model,
    # which dynamo cannot trace; PyTorch attention is what it uses on GPUs
    comfy.cli_args.args.use_pytorch_cross_attention = True


def _tiny_patcher(architecture: str = "sd15") -> Any:
    import comfy.model_base
    import comfy.model_patcher
    import comfy.supported_models
    import torch

    from comfyx.testing.checkpoint import TINY_UNET

    if architecture == "sdxl":
        base = comfy.model_base.SDXL(comfy.supported_models.SDXL(dict(TINY_SDXL_UNET)), device="cpu")
    elif architecture == "flux":
        base = comfy.model_base.Flux(comfy.supported_models.Flux(dict(TINY_FLUX)), device="cpu")
    else:
        base = comfy.model_base.BaseModel(comfy.supported_models.SD15(dict(TINY_UNET)), device="cpu")
    generator = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for param in base.parameters():
            param.copy_(torch.randn(param.shape, generator=generator) * 0.05)
    cpu = torch.device("cpu")
    return comfy.model_patcher.ModelPatcher(base, load_device=cpu, offload_device=cpu)


def _sample(model: Any, seed: int = 0, latent_shape: tuple[int, ...] = LATENT) -> Any:
    import nodes
    import torch

    unet = model.model.model_config.unet_config
    generator = torch.Generator().manual_seed(1)

    def cond() -> list:
        if unet.get("image_model") == "flux":
            pooled = {"pooled_output": torch.randn(1, unet["vec_in_dim"], generator=generator), "guidance": 3.5}
            return [[torch.randn(1, 8, unet["context_in_dim"], generator=generator), pooled]]
        extra = {"pooled_output": torch.randn(1, 1280, generator=generator)} if "adm_in_channels" in unet else {}
        return [[torch.randn(1, 77, unet["context_dim"], generator=generator), extra]]

    positive, negative = cond(), cond()
    latent = {"samples": torch.zeros(latent_shape)}
    return nodes.common_ksampler(model, seed, 2, 7.0, "euler", "normal", positive, negative, latent)[0]["samples"]


def _apply(caches: Any, model: Any, **changes: Any) -> Any:
    from comfyx.compile.nodes import TorchCompileSpeedSettings, node_classes

    (args,) = TorchCompileSpeedSettings().settings(**{**SETTINGS, **changes})
    return node_classes(caches)["ComfyxApplyTorchCompile"]().apply(model, args)[0]


def _frames() -> int:
    from torch._dynamo.utils import counters

    return int(counters["frames"]["ok"])


def _rel(a: Any, b: Any) -> float:
    return float((a - b).norm() / b.norm())


def full(caches: Any) -> dict:
    from comfyx.compile.apply import compiled_model_of

    report: dict[str, Any] = {}
    base = _tiny_patcher()
    reference = _sample(base)

    compiled = _apply(caches, base)
    out = _sample(compiled)
    first = compiled_model_of(compiled)
    report["first"] = {"rel_err": _rel(out, reference), "metrics": first.metrics.summary()}

    # a second prompt: ComfyUI re-runs the apply node on a new clone (e.g. after an upstream change)
    again = _apply(caches, base)
    before = _frames()
    _sample(again, seed=1)
    report["second_prompt"] = {"frames": _frames() - before, "same_compiled": compiled_model_of(again) is first}

    # fast math changes the generated code (a different inductor config): a new compile
    changed = _apply(caches, base, ptx_fast_math=True)
    before = _frames()
    changed_out = _sample(changed)
    report["changed_config"] = {"frames": _frames() - before, "same_compiled": compiled_model_of(changed) is first,
                                "rel_err": _rel(changed_out, reference)}  # fmt: skip

    # the clone the compile was applied to, and the model underneath, stay eager
    before = _frames()
    eager_again = _sample(base)
    report["original"] = {
        "frames": _frames() - before,
        "identical_to_reference": bool((eager_again == reference).all()),
        "has_compile_wrapper": compiled_model_of(base) is not None,
        "diffusion_model_class": type(base.model.diffusion_model).__name__,
    }

    # a LoRA-style weight patch on the compiled clone reaches the compiled code
    key = "diffusion_model.out.2.weight"
    delta = (0.2 * __import__("torch").ones_like(base.model.diffusion_model.out[2].weight),)
    report["lora"] = _patched(compiled, base, out, lambda patcher: patcher.add_patches({key: delta}, 1.0))
    # the same through a saved trace (compile_trace_cache): the weights it reads are the patched ones
    traced = _apply(caches, base, compile_trace_cache=True)
    report["lora_traced"] = _patched(traced, base, out, lambda patcher: patcher.add_patches({key: delta}, 1.0))
    report["lora_traced"]["traces_saved"] = compiled_model_of(traced).metrics.traces_saved

    # a patch ComfyUI finds by a block's position (transformer_options' patches_replace, keyed by
    # block and index) reaches that block, and that block only, in the compiled UNet regions
    report["position_patch"] = _patched(_apply(caches, base, compile_unet_regions=True), base, out,
                                        lambda patcher: patcher.set_model_attn1_replace(_half_of_input, "input", 1))
    return report


def _patched(compiled: Any, base: Any, unpatched: Any, patch: Any) -> dict:
    """Sample clones of the compiled model and of the eager one, both patched by ``patch``: the frames the
    compiled one compiled, its error against the eager one and its change from ``unpatched``."""
    patched_compiled, patched_eager = compiled.clone(), base.clone()
    for patcher in (patched_compiled, patched_eager):
        patch(patcher)
    before = _frames()
    out = _sample(patched_compiled)
    return {"frames": _frames() - before, "rel_err_vs_eager_patched": _rel(out, _sample(patched_eager)),
            "rel_change_vs_unpatched": _rel(out, unpatched)}


def _half_of_input(q: Any, k: Any, v: Any, extra_options: dict) -> Any:
    """An attn1 replacement (ComfyUI's ``set_model_attn1_replace``): half its input instead of attention."""
    return q * 0.5


def warm(caches: Any) -> dict:
    from comfyx.compile.apply import compiled_model_of

    compiled = _apply(caches, _tiny_patcher())
    _sample(compiled)
    return {"metrics": compiled_model_of(compiled).metrics.summary()}


def _attention_as_on_cuda(attention: Any, *args: Any, **kwargs: Any) -> Any:
    """ComfyUI's attention as it runs on CUDA, where ``comfy.ops.scaled_dot_product_attention``
    enters torch's ``sdpa_kernel`` (cuDNN first) around every SDPA call. On a CPU ComfyUI calls
    SDPA bare; its attention override hook puts the same context around it here."""
    from torch.nn.attention import SDPBackend, sdpa_kernel

    priority = [SDPBackend.CUDNN_ATTENTION, SDPBackend.FLASH_ATTENTION, SDPBackend.EFFICIENT_ATTENTION,
                SDPBackend.MATH]  # fmt: skip
    with sdpa_kernel(priority, set_priority=True):
        return attention(*args, **kwargs)


def restart(caches: Any, latent_file: Path, trace_cache: bool) -> dict:
    """One process of a restart: the speed preset (the node's defaults) on the tiny SDXL UNet; without the saved
    trace (``trace_cache`` False), Dynamo traces it again and the restart shows torch's own caches."""
    import torch

    from comfyx.compile.apply import compiled_model_of

    model = _tiny_patcher("sdxl")
    model.model_options.setdefault("transformer_options", {})["optimized_attention_override"] = _attention_as_on_cuda
    compiled = _apply(caches, model, mode="speed", ptx_fast_math=True, compile_trace_cache=trace_cache)
    torch.save(_sample(compiled), latent_file)
    return {"metrics": compiled_model_of(compiled).metrics.summary()}


def flux_restart(caches: Any, latent_file: Path) -> dict:
    """One process of a restart of a tiny Flux, compiled as its blocks (the node's defaults) with saved traces."""
    import torch

    from comfyx.compile.apply import compiled_model_of

    model = _tiny_patcher("flux")
    reference = _sample(model, latent_shape=(1, 16, 8, 8))
    compiled = _apply(caches, model, mode="speed", compile_trace_cache=True)
    latent = _sample(compiled, latent_shape=(1, 16, 8, 8))
    torch.save(latent, latent_file)
    return {"metrics": compiled_model_of(compiled).metrics.summary(), "rel_err": _rel(latent, reference)}


def resolutions(caches: Any, regions: bool, trace_cache: bool) -> dict:
    """The speed preset on the tiny SDXL UNet (``regions``: its spatial transformers and ResNet blocks)
    at each of :data:`RESOLUTIONS`, then at the first again: what dynamo compiled at each, and why."""
    from comfyx.compile.apply import compiled_model_of
    from comfyx.compile.metrics import compile_records_since, newest_compile_record

    compiled = _apply(caches, _tiny_patcher("sdxl"), mode="speed", compile_unet_regions=regions,
                      compile_trace_cache=trace_cache)
    steps = []
    for height, width in (*RESOLUTIONS, RESOLUTIONS[0]):
        mark = newest_compile_record()
        _sample(compiled, latent_shape=(1, 4, height, width))
        records = compile_records_since(mark)
        steps.append({
            "latent": [height, width],
            "compiled": [f"{r.co_name} ({r.co_filename}:{r.co_firstlineno})" for r in records],
            "recompile_reasons": [r.recompile_reason for r in records if r.recompile_reason],
        })  # fmt: skip
    return {"steps": steps, "metrics": compiled_model_of(compiled).metrics.summary()}


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--comfyui", type=Path, required=True)
    parser.add_argument("--cache-dir", type=Path, required=True)
    parser.add_argument("scenario", choices=["full", "warm", "restart", "flux-restart", "resolutions"])
    parser.add_argument("--latent", type=Path, help="restart: where to save the sampled latent")
    parser.add_argument("--regions", action="store_true", help="resolutions: compile_unet_regions")
    parser.add_argument("--no-trace-cache", dest="trace_cache", action="store_false",
                        help="restart, resolutions: compile_trace_cache off")
    args = parser.parse_args()
    if args.scenario in ("restart", "flux-restart") and args.latent is None:
        parser.error(f"the {args.scenario} scenario needs --latent")
    from comfyx.paths import CompileCaches, export_compile_caches

    caches = CompileCaches.resolve(args.cache_dir, os.environ)
    export_compile_caches(caches, os.environ)  # before torch is imported, as comfyx serve does
    _import_comfyui(args.comfyui)
    import torch

    with torch.inference_mode():  # as ComfyUI runs its nodes
        scenarios = {"full": full, "warm": warm, "restart": lambda c: restart(c, args.latent, args.trace_cache),
                     "flux-restart": lambda c: flux_restart(c, args.latent),
                     "resolutions": lambda c: resolutions(c, args.regions, args.trace_cache)}
        report = scenarios[args.scenario](caches)
    print("REPORT " + json.dumps(report))
    return 0


if __name__ == "__main__":
    sys.exit(main())
