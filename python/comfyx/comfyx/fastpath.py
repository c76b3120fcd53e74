"""The fast path: comfyx's kernels, fp8 quantization at load and compilation in users' workflows.

``--optimization performance`` (``--fast`` for short; ``backend.optimization = "performance"`` in the
Nix modules) turns on every part; each part has its own setting, which wins over it:

- ``--kernels/--no-kernels`` (default on): fp8 checkpoints (scaled_fp8, plain fp8, comfy_quant)
  and comfy_quant NVFP4 / MXFP8 ones multiply on comfyx's kernels, and Flux-family models use
  comfyx's RoPE kernel;
- ``--quantize {none,fp8,nvfp4,mxfp8}`` (default none, fp8 with --fast): every bf16/fp16
  diffusion model loaded gets Linear layers in that format, where comfyx's kernels for it can
  run (CUDA sm_89+);
- ``--quantize-layers {blocks,all}`` (default blocks): the transformer blocks' Linear layers,
  or all of them;
- ``--compile/--no-compile`` (default off, on with --fast): every diffusion model loaded runs
  through comfyx's compile (speed mode, transformer blocks, persistent caches);
- ``--compile-unet-regions`` (default off): that compile takes a UNet's spatial transformers and
  ResNet blocks rather than the whole UNet (faster compiles and restarts, slower sampling);
- ``--compile-trace-cache/--no-compile-trace-cache`` (default on): that compile keeps Dynamo's traces
  on disk (a UNet's, Flux's blocks'), so a restart loads them instead of tracing again
  (:mod:`comfyx.compile.traces`);
- ``--compile-cuda-graphs/--no-compile-cuda-graphs`` (default off, on with --fast): a model that
  compiles whole (a UNet) replays its compiled step as CUDA graphs (torch's ``reduce-overhead``), so
  the host's kernel launches no longer bound the step; per-block compiles (Flux) stay without;
- ``--compile-vae/--no-compile-vae`` (default off, also with --fast): every VAE decoder loaded (SD-family,
  Flux) runs compiled, as CUDA graphs with ``--compile-cuda-graphs`` (:mod:`comfyx.compile.vae`): less peak
  VRAM, a slower decode;
- ``--fp8-fast-accum/--no-fp8-fast-accum`` (default on): fp8 GEMMs accumulate in the tensor
  cores' fast mode (comfyx_kernels' ``fast_accum``);
- ``--fp8-activation-scale {calibrated,dynamic}`` (default calibrated): how fp8 layers without a
  checkpoint's static scale scale their activations: fixed after the first step
  (:mod:`comfyx.kernels.calibrate`), or per call.

The engine is chosen by ``--engine`` (BMF by default, with or without --fast).
"""

from __future__ import annotations

import dataclasses
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from comfyx.kernels import ACTIVATION_SCALES, NVFP4_ACTIVATIONS, QUANTIZE_FORMATS, QUANTIZE_LAYERS, LayerOptions
from comfyx.paths import CompileCaches
from comfyx.settings.spec import SWITCH, Group, Setting, SettingsError, choice

log = logging.getLogger(__name__)

OPTIMIZATIONS = ("default", "performance")
QUANTIZE = ("none", *QUANTIZE_FORMATS)
LAYERS = QUANTIZE_LAYERS


class FastPathUnavailableError(RuntimeError):
    """A part of the fast path was asked for and cannot run here; the message says why."""


@dataclass(frozen=True)
class FastPathSettings:
    optimization: str = "default"  # performance: every part below on, unless set otherwise
    kernels: bool = True
    quantize: str = "none"
    quantize_layers: str = "blocks"
    compile: bool = False
    compile_unet_regions: bool = False
    compile_trace_cache: bool = True
    compile_cuda_graphs: bool = False
    compile_vae: bool = False
    fp8_fast_accum: bool = True
    fp8_activation_scale: str = "calibrated"
    nvfp4_activation: str = "bf16"

    def __post_init__(self) -> None:
        if self.quantize != "none" and not self.kernels:
            raise SettingsError(f"--quantize {self.quantize} runs on comfyx's kernels: drop --no-kernels")

    @property
    def cuda_graphs(self) -> bool:
        """Whether something compiled replays as CUDA graphs: a model compiled whole, or a VAE's decoder."""
        return self.compile_cuda_graphs and (self.compile or self.compile_vae)

    @property
    def layer_options(self) -> LayerOptions:
        return LayerOptions(fp8_fast_accum=self.fp8_fast_accum, nvfp4_activation=self.nvfp4_activation)

    def describe(self) -> str:
        parts = [f"kernels {'on' if self.kernels else 'off'}"]
        if self.quantize != "none":
            parts.append(f"quantize {self.quantize} ({self.quantize_layers})")
        if self.kernels and self.fp8_activation_scale != "calibrated":
            parts.append(f"fp8 activation scales {self.fp8_activation_scale}")
        if self.kernels and self.nvfp4_activation != "bf16":
            parts.append(f"NVFP4 activations {self.nvfp4_activation}")
        regions = " (UNet regions)" if self.compile and self.compile_unet_regions else ""
        graphs = ", CUDA graphs where compiled whole" if self.compile and self.compile_cuda_graphs else ""
        traces = ", no saved traces" if self.compile and not self.compile_trace_cache else ""
        parts.append(f"compile {'on' if self.compile else 'off'}{regions}{graphs}{traces}")
        if self.compile_vae:
            parts.append("VAE decoder compiled" + (" (CUDA graphs)" if self.compile_cuda_graphs else ""))
        return ", ".join(parts)


GROUP = Group("fast", "fast path (comfyx's kernels, fp8, compile)", (
    Setting("optimization", "--optimization", choice(*OPTIMIZATIONS), "performance: all of the fast path "
            "(--kernels --quantize fp8 --compile; the settings below override its parts)",
            nix="backend.optimization", shorthand=("--fast", "performance")),
    Setting("kernels", "--kernels", SWITCH,
            "quantized checkpoints (fp8, NVFP4, MXFP8) and Flux RoPE on comfyx's kernels", nix="fast.kernels"),
    Setting("quantize", "--quantize", choice(*QUANTIZE), "quantize every bf16/fp16 diffusion model loaded",
            nix="fast.quantize", default_text="none; fp8 with --fast"),
    Setting("quantize_layers", "--quantize-layers", choice(*LAYERS), "blocks: the transformer blocks' Linear "
            "layers; all: every Linear", nix="fast.quantizeLayers"),
    Setting("compile", "--compile", SWITCH, "compile every diffusion model loaded (speed mode, persistent caches)",
            nix="fast.compile", default_text="off; on with --fast"),
    Setting("compile_unet_regions", "--compile-unet-regions", SWITCH, "--compile takes a UNet's (SD1.5, SDXL) "
            "spatial transformers and ResNet blocks instead of the whole UNet: SDXL on an H100 reached its first "
            "step in 11.7 s instead of 36.2 s after a restart (53.9 s instead of 108.7 s cold) but sampled at "
            "0.83x the speed", nix="fast.compileUnetRegions"),
    Setting("compile_trace_cache", "--compile-trace-cache", SWITCH, "--compile keeps Dynamo's traces of what it "
            "compiles (a UNet whole, Flux's blocks; not --compile-unet-regions) beside the compile caches, checked "
            "against the model, the call, ComfyUI's options and the traced sources before use, so that a restart "
            "loads them instead of tracing again: SDXL's fp8 UNet on an H100 reached its first step in 4.6 s "
            "after a restart, 2.8% of the cold 164.6 s", nix="fast.compileTraceCache"),
    Setting("compile_cuda_graphs", "--compile-cuda-graphs", SWITCH, "a model --compile takes whole (a UNet) "
            "replays its steps as CUDA graphs, so that the host's kernel launches do not bound them: an SDXL UNet "
            "step (fp8, 1024², cfg batch) took 37.9 ms instead of 59.9 ms on an H100; per-block compiles (Flux) "
            "stay without; a decoder --compile-vae compiles, too", nix="fast.compileCudaGraphs",
            default_text="off; on with --fast"),
    Setting("compile_vae", "--compile-vae", SWITCH, "compile every VAE decoder loaded (SD-family and Flux VAEs; "
            "with saved traces and, under --compile-cuda-graphs, as CUDA graphs in the memory pool of the compiled "
            "model's graphs): SDXL 1024² on an H100 peaked at 0.79x stock's VRAM instead of 0.92x, but took 0.95 s "
            "end to end instead of 0.91 s, so --fast leaves it off", nix="fast.compileVae"),
    Setting("fp8_fast_accum", "--fp8-fast-accum", SWITCH, "fp8 GEMMs accumulate in the tensor cores' fast mode "
            "(2 to 4 percent less GPU time on an H100, 0.02 to 0.05 percent more relative error); off: float32 "
            "accumulation",
            nix="fast.fp8FastAccum"),
    Setting("fp8_activation_scale", "--fp8-activation-scale", choice(*ACTIVATION_SCALES), "how fp8 layers "
            "without a checkpoint's static scale scale their activations: calibrated (fixed after the first step, "
            "at 16 times its largest value: no amax pass per call; on an H100 Flux "
            "ran 1.14x the it/s of dynamic) or dynamic (per call)",
            nix="fast.fp8ActivationScale"),
    Setting("nvfp4_activation", "--nvfp4-activation", choice(*NVFP4_ACTIVATIONS), "how NVFP4 layers multiply "
            "on sm_89/sm_90 GPUs: bf16 (the exact product of the bf16 activation and the 4-bit weight) or fp8 "
            "(W4A8: activation and weight rounded to fp8 for fp8 tensor cores; an eager Flux step on an H100 took "
            "0.81x the time, its relative error against bf16 0.152 instead of 0.148)",
            nix="fast.nvfp4Activation"),
))


def build(values: dict[str, Any], kernels_unavailable: str | None) -> tuple[FastPathSettings, str | None]:
    """The settings given (see :func:`comfyx.settings.spec.read`), and why the kernels are off when they are on by
    default but cannot run here (``kernels_unavailable``; None otherwise). Raises FastPathUnavailableError when
    the kernels are asked for (by --kernels, --fast or --quantize) and cannot run.
    """
    performance = values.get("optimization") == "performance"
    quantize = values.get("quantize", "fp8" if performance else "none")
    wanted = values.get("kernels", True if performance or quantize != "none" else None)
    if kernels_unavailable is not None and wanted:
        raise FastPathUnavailableError(f"comfyx's kernels cannot run: {kernels_unavailable} (--no-kernels runs "
                                       "without them)")
    settings = FastPathSettings(
        optimization=values.get("optimization", "default"),
        kernels=wanted is not False and kernels_unavailable is None,
        quantize=quantize,
        quantize_layers=values.get("quantize_layers", "blocks"),
        compile=values.get("compile", performance),
        compile_unet_regions=values.get("compile_unet_regions", False),
        compile_trace_cache=values.get("compile_trace_cache", True),
        compile_cuda_graphs=values.get("compile_cuda_graphs", performance),
        compile_vae=values.get("compile_vae", False),
        fp8_fast_accum=values.get("fp8_fast_accum", True),
        fp8_activation_scale=values.get("fp8_activation_scale", "calibrated"),
        nvfp4_activation=values.get("nvfp4_activation", "bf16"),
    )
    return settings, kernels_unavailable if wanted is None else None


def comfyui_args(settings: FastPathSettings, args: list[str]) -> list[str]:
    """ComfyUI's arguments for ``settings``: CUDA graphs need torch's own CUDA allocator, where ComfyUI
    picks cudaMallocAsync by default (its cuda_malloc.py), under which torch cannot record them."""
    if not settings.cuda_graphs:
        return args
    if "--cuda-malloc" in args:
        raise SettingsError("--compile-cuda-graphs needs torch's own CUDA allocator and ComfyUI's --cuda-malloc "
                            "asks for cudaMallocAsync, which cannot record CUDA graphs: drop one of them")
    return args if "--disable-cuda-malloc" in args else [*args, "--disable-cuda-malloc"]


def _cuda_graphs_problem(device: Any) -> str | None:
    import torch

    if getattr(device, "type", None) != "cuda":
        return f"the model runs on {device}, CUDA graphs need a CUDA device"
    backend = torch.cuda.get_allocator_backend()
    if backend != "native":
        return f"torch's CUDA allocator is {backend} (PYTORCH_CUDA_ALLOC_CONF), CUDA graphs need its native one"
    return None


def install(settings: FastPathSettings, caches: CompileCaches, calibration: Path) -> None:
    """Register the hooks the settings ask for (importing neither ComfyUI nor torch); ``--compile`` keeps its
    caches in ``caches``, calibrated activation scales are kept in ``calibration``."""
    from comfyx.comfyui.loaders import on_diffusion_model_loaded, on_vae_loaded

    if settings.kernels:
        from comfyx import kernels

        kernels.install(settings.layer_options)
    if settings.quantize != "none":
        def quantize(patcher: Any) -> Any:  # a ModelPatcher, changed in place
            from comfyx.kernels.quantize import quantize_loaded_model

            quantize_loaded_model(patcher, settings.quantize, settings.quantize_layers, settings.layer_options)
            return patcher

        on_diffusion_model_loaded(quantize)
    if settings.kernels and settings.fp8_activation_scale == "calibrated":
        def calibrate(patcher: Any) -> Any:  # before compile: its wrapper must run outside compile's
            from comfyx.kernels.calibrate import CalibrationStore, add_calibration

            add_calibration(patcher, CalibrationStore(calibration))
            return patcher

        on_diffusion_model_loaded(calibrate)
    if settings.compile:
        def compile_model(patcher: Any) -> Any:  # the clone that runs compiled
            from comfyx.compile.apply import apply_compile
            from comfyx.compile.settings import CompileSettings
            from comfyx.compile.targets import WHOLE_MODEL, compile_keys

            chosen = CompileSettings(compile_unet_regions=settings.compile_unet_regions,
                                     compile_trace_cache=settings.compile_trace_cache)
            keys = compile_keys(patcher.model, chosen.compile_transformer_blocks_only, chosen.compile_unet_regions)
            # CUDA graphs only where measured: a model compiled whole (bench/compile.py's sdxl-fp8-graphs1).
            # Not the UNet's regions: torch's CUDA graph trees take each compiled region entered from eager code
            # for a new run and reuse the memory of outputs still held (the skip connections): the first step
            # failed with "accessing tensor output of CUDAGraphs that has been overwritten" (H100, 2026-12-07)
            if settings.compile_cuda_graphs and keys == WHOLE_MODEL:
                problem = _cuda_graphs_problem(patcher.load_device)
                if problem is None:
                    chosen = dataclasses.replace(chosen, mode="reduce-overhead")
                else:
                    log.info("comfyx compile: no CUDA graphs: %s", problem)
            return apply_compile(patcher, chosen, caches)

        on_diffusion_model_loaded(compile_model)
    if settings.compile_vae:
        def compile_vae(vae: Any) -> None:  # a comfy.sd.VAE, changed in place
            from comfyx.compile.vae import compile_vae_decoder

            problem = _cuda_graphs_problem(vae.device) if settings.compile_cuda_graphs else None
            graphs = settings.compile_cuda_graphs and problem is None
            if compile_vae_decoder(vae, caches, graphs, settings.compile_trace_cache) and problem is not None:
                log.info("comfyx compile: the VAE's decoder runs without CUDA graphs: %s", problem)

        on_vae_loaded(compile_vae)
