"""The TPU options: comfyx's own flags, taken out of ComfyUI's command line.

They keep the meaning the "Enhanced TPU/XLA" fork gave them, and every one of them is
read somewhere (see the package docstring for where). Options that are on by default
have a ``--no-...`` form.
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass


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


_current = TPUSettings()


def current() -> TPUSettings:
    return _current


def set_current(settings: TPUSettings) -> None:
    global _current
    _current = settings


def add_arguments(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("TPU (torch_xla) options")
    on_off = group.add_mutually_exclusive_group()
    on_off.add_argument("--tpu-enable", dest="tpu_enable", action="store_const", const=True, default=None,
                        help="run on the XLA device (same as --backend tpu)")
    on_off.add_argument("--tpu-disable", dest="tpu_enable", action="store_const", const=False,
                        help="never pick the TPU, even when --backend auto finds one")
    group.add_argument("--tpu-warmup", action=argparse.BooleanOptionalAction, default=True,
                       help="compile each new sampling signature with a short throw-away run first (default: on)")
    group.add_argument("--tpu-warmup-steps", type=_positive, default=2, metavar="N",
                       help="sampler steps a warm-up runs (default: %(default)s)")
    group.add_argument("--tpu-manual-warmup", action="store_true",
                       help="warm up only through the TPU Manual Warmup node, never on a request; "
                       "a request that compiles logs a warning")
    group.add_argument("--tpu-autocast-bf16", action=argparse.BooleanOptionalAction, default=False,
                       help="sample under bfloat16 autocast on the XLA device (default: off)")
    group.add_argument("--tpu-compilation-cache", action=argparse.BooleanOptionalAction, default=True,
                       help="torch_xla's persistent compilation cache in comfyx's cache directory (default: on)")
    group.add_argument("--tpu-shape-padding", action=argparse.BooleanOptionalAction, default=True,
                       help="pad latents to size buckets so XLA compiles once per bucket (default: on)")
    group.add_argument("--tpu-pad-multiple", type=_positive_multiple_of_8, default=64, metavar="PX",
                       help="bucket size in pixels for --tpu-shape-padding (default: %(default)s)")
    group.add_argument("--tpu-debug-metrics", action="store_true",
                       help="log torch_xla's metrics report after every sampling run")
    group.add_argument("--tpu-sync-steps", type=_positive, default=1, metavar="N",
                       help="cut the XLA graph (mark_step) every N sampler steps (default: %(default)s)")


def from_args(args: argparse.Namespace) -> TPUSettings:
    return TPUSettings(
        enable=args.tpu_enable,
        warmup=args.tpu_warmup and not args.tpu_manual_warmup,
        warmup_steps=args.tpu_warmup_steps,
        manual_warmup=args.tpu_manual_warmup,
        autocast_bf16=args.tpu_autocast_bf16,
        compilation_cache=args.tpu_compilation_cache,
        shape_padding=args.tpu_shape_padding,
        pad_multiple_px=args.tpu_pad_multiple,
        debug_metrics=args.tpu_debug_metrics,
        sync_steps=args.tpu_sync_steps,
    )


def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, not {value}")
    return value


def _positive_multiple_of_8(text: str) -> int:
    value = _positive(text)
    if value % 8:
        raise argparse.ArgumentTypeError(f"must be a multiple of 8 (one latent pixel), not {value}")
    return value
