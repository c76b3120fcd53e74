"""The backend settings: which accelerator (``--backend``) and Intel's int8 (``--ipex-int8``)."""

from __future__ import annotations

from dataclasses import dataclass

from comfyx.settings.spec import SWITCH, Group, Setting, choice

BACKENDS = ("auto", "cuda", "ipex", "tpu", "cpu")


@dataclass(frozen=True)
class BackendSettings:
    name: str = "auto"  # auto picks CUDA, then Intel XPU, then TPU, then the CPU


@dataclass(frozen=True)
class IntelSettings:
    int8: bool = False  # IPEX dynamic int8 for the diffusion model's Linear layers (CPUs with VNNI)


BACKEND = Group("backend", "backend", (
    Setting("name", "--backend", choice(*BACKENDS), "accelerator backend; auto picks CUDA, then Intel XPU, then "
            "TPU, then the CPU", nix="backend.type"),
))

INTEL = Group("intel", "Intel (IPEX)", (
    Setting("int8", "--ipex-int8", SWITCH, "IPEX on a CPU with VNNI: quantize the diffusion model's Linear layers "
            "to int8 (dynamic quantization; lossy); implies --backend ipex", nix="ipex.int8"),
))
