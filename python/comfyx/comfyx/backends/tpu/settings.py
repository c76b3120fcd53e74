"""The TPU options: comfyx's own flags, taken out of ComfyUI's command line.

They keep the meaning the "Enhanced TPU/XLA" fork gave them, and every one of them is
read somewhere (see the package docstring for where). Options that are on by default
have a ``--no-...`` form. They travel as one :class:`TPUSettings`, given to
:func:`comfyx.backends.tpu.install` and to the TPU nodes.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

from comfyx.settings.spec import SWITCH, Group, Kind, Setting, whole


@dataclass(frozen=True)
class TPUSettings:
    enable: bool | None = None  # True: --tpu-enable, False: --tpu-disable, None: auto decides
    warmup: bool = True
    warmup_steps: int = 2
    manual_warmup: bool = False
    autocast_bf16: bool = False
    compilation_cache: bool = True
    shape_padding: bool = True
    pad_multiple_px: int = 64
    debug_metrics: bool = False
    sync_steps: int = 1


def build(values: dict[str, Any]) -> TPUSettings:
    """The settings given (see :func:`comfyx.settings.spec.read`); manual warm-up turns request warm-ups off."""
    settings = TPUSettings(**values)
    return replace(settings, warmup=False) if settings.manual_warmup else settings


def _multiple_of_8(low: int, high: int) -> Kind:
    base = whole(low, high)

    def parse(text: str) -> int:
        value = base.parse(text)
        if value % 8:
            raise ValueError(text)
        return value

    return Kind("whole", parse, f"a multiple of 8 from {low} to {high}", {**base.nix, "multipleOf": 8})


GROUP = Group("tpu", "TPU (torch_xla) options", (
    Setting("enable", "--tpu-enable", SWITCH, "run on the XLA device (the same as --backend tpu); --tpu-disable: "
            "never pick the TPU, even when --backend auto finds one", nix="tpu.enable", off_flag="--tpu-disable",
            default_text="unset: --backend decides"),
    Setting("warmup", "--tpu-warmup", SWITCH, "compile each new sampling signature with a short throw-away run "
            "first", nix="tpu.warmup"),
    Setting("warmup_steps", "--tpu-warmup-steps", whole(1, 1000), "sampler steps a warm-up runs",
            nix="tpu.warmupSteps"),
    Setting("manual_warmup", "--tpu-manual-warmup", SWITCH, "warm up only through the TPU Manual Warmup node, "
            "never on a request; a request that compiles logs a warning", nix="tpu.manualWarmup"),
    Setting("autocast_bf16", "--tpu-autocast-bf16", SWITCH, "sample under bfloat16 autocast on the XLA device",
            nix="tpu.autocastBf16"),
    Setting("compilation_cache", "--tpu-compilation-cache", SWITCH, "torch_xla's persistent compilation cache in "
            "comfyx's cache directory", nix="tpu.compilationCache"),
    Setting("shape_padding", "--tpu-shape-padding", SWITCH, "pad latents to size buckets so that XLA compiles "
            "once per bucket", nix="tpu.shapePadding"),
    Setting("pad_multiple_px", "--tpu-pad-multiple", _multiple_of_8(8, 1024), "bucket size in pixels for "
            "--tpu-shape-padding", nix="tpu.padMultiple"),
    Setting("debug_metrics", "--tpu-debug-metrics", SWITCH, "log torch_xla's metrics report after every sampling "
            "run", nix="tpu.debugMetrics"),
    Setting("sync_steps", "--tpu-sync-steps", whole(1, 1000), "cut the XLA graph (mark_step) every N sampler steps",
            nix="tpu.syncSteps"),
))
