"""The fast path: comfyx's kernels, fp8 quantization at load and compilation in users' workflows.

``comfyx serve --fast`` turns on every part; each part has its own flag:

- ``--kernels/--no-kernels`` (default on): fp8 checkpoints (scaled_fp8, plain fp8, comfy_quant)
  multiply on comfyx's fp8 kernels, and Flux-family models use comfyx's RoPE kernel;
- ``--quantize {none,fp8}`` (default none, fp8 with --fast): every bf16/fp16 diffusion model
  loaded gets fp8 Linear layers, where fp8 GEMMs can run (CUDA sm_89+);
- ``--quantize-layers {blocks,all}`` (default blocks): the transformer blocks' Linear layers,
  or all of them;
- ``--compile/--no-compile`` (default off, on with --fast): every diffusion model loaded runs
  through comfyx's compile (speed mode, transformer blocks, persistent caches).

The engine is chosen by ``--engine`` (BMF by default, with or without --fast).
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from typing import Any

from comfyx.kernels import QUANTIZE_FORMATS, QUANTIZE_LAYERS

QUANTIZE = ("none", *QUANTIZE_FORMATS)
LAYERS = QUANTIZE_LAYERS


class FastPathUnavailableError(RuntimeError):
    """A part of the fast path was asked for and cannot run here; the message says why."""


@dataclass(frozen=True)
class FastPathSettings:
    kernels: bool = True
    quantize: str = "none"
    quantize_layers: str = "blocks"
    compile: bool = False

    def __post_init__(self) -> None:
        if self.quantize not in QUANTIZE:
            raise FastPathUnavailableError(f"--quantize must be one of {', '.join(QUANTIZE)}, not {self.quantize!r}")
        if self.quantize_layers not in LAYERS:
            raise FastPathUnavailableError(
                f"--quantize-layers must be one of {', '.join(LAYERS)}, not {self.quantize_layers!r}")
        if self.quantize != "none" and not self.kernels:
            raise FastPathUnavailableError(f"--quantize {self.quantize} runs on comfyx's kernels: drop --no-kernels")

    def describe(self) -> str:
        parts = [f"kernels {'on' if self.kernels else 'off'}"]
        if self.quantize != "none":
            parts.append(f"quantize {self.quantize} ({self.quantize_layers})")
        parts.append(f"compile {'on' if self.compile else 'off'}")
        return ", ".join(parts)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("fast path (comfyx's kernels, fp8, compile)")
    group.add_argument("--fast", action="store_true",
                       help="all of it: --kernels --quantize fp8 --compile (finer flags below override)")
    group.add_argument("--kernels", action=argparse.BooleanOptionalAction, default=None,
                       help="fp8 checkpoints and Flux RoPE on comfyx's kernels (default: on)")
    group.add_argument("--quantize", choices=QUANTIZE, default=None,
                       help="quantize every bf16/fp16 diffusion model loaded (default: none; fp8 with --fast)")
    group.add_argument("--quantize-layers", choices=LAYERS, default=None,
                       help="blocks: the transformer blocks' Linear layers; all: every Linear (default: blocks)")
    group.add_argument("--compile", action=argparse.BooleanOptionalAction, default=None,
                       help="compile every diffusion model loaded (speed mode, persistent caches; "
                       "default: off; on with --fast)")


def from_args(args: argparse.Namespace) -> tuple[FastPathSettings, str | None]:
    """The settings the flags ask for, and why the kernels are off when they are on by default
    but cannot run here (None otherwise). Raises FastPathUnavailableError for a contradiction, or
    for the kernels asked for by name (or by --fast, --quantize) where they cannot run.
    """
    from comfyx import kernels

    fast = FastPathSettings(quantize="fp8", compile=True) if args.fast else FastPathSettings()
    quantize = fast.quantize if args.quantize is None else args.quantize
    wanted = args.kernels if args.kernels is not None else (True if args.fast or quantize != "none" else None)
    reason = kernels.unavailable_reason() if wanted is not False else None
    if reason is not None and wanted:
        raise FastPathUnavailableError(f"comfyx's kernels cannot run: {reason} (--no-kernels runs without them)")
    settings = FastPathSettings(
        kernels=wanted is not False and reason is None,
        quantize=quantize,
        quantize_layers=fast.quantize_layers if args.quantize_layers is None else args.quantize_layers,
        compile=fast.compile if args.compile is None else args.compile,
    )
    return settings, reason


def install(settings: FastPathSettings) -> None:
    """Register the hooks the settings ask for (importing neither ComfyUI nor torch)."""
    from comfyx.comfyui.loaders import on_diffusion_model_loaded

    if settings.kernels:
        from comfyx import kernels

        kernels.install()
    if settings.quantize != "none":
        def quantize(patcher: Any) -> Any:  # a ModelPatcher, changed in place
            from comfyx.kernels.quantize import quantize_loaded_model

            quantize_loaded_model(patcher, settings.quantize_layers)
            return patcher

        on_diffusion_model_loaded(quantize)
    if settings.compile:
        def compile_model(patcher: Any) -> Any:  # the clone that runs compiled
            from comfyx.compile.apply import apply_compile
            from comfyx.compile.settings import CompileSettings

            return apply_compile(patcher, CompileSettings())

        on_diffusion_model_loaded(compile_model)
