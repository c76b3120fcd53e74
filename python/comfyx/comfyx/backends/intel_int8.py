"""int8 for the diffusion model on Intel CPUs, asked for with ``--ipex-int8`` (``COMFYX_IPEX_INT8=1``;
the setting reaches :func:`comfyx.backends.intel.install` in :class:`~comfyx.backends.settings.IntelSettings`).

IPEX's own dynamic quantization (``ipex.quantization.prepare`` with its default dynamic
qconfig mapping, then ``convert``): the weights of ``torch.nn.Linear`` layers become
per-channel int8, activations are quantized per call, and the matmuls run in int8.
Conv2d layers stay float32 (IPEX quantizes convolutions only statically, with
calibration data and TorchScript graphs, which ComfyUI's models do not go through).

Where it is not supported — an XPU, weights that are not float32, a CPU that oneDNN
cannot give VNNI — the refusal is logged with the reason and the model keeps float32.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from contextlib import contextmanager
from types import ModuleType

from comfyx.backends.cpuinfo import cpu_flags, describe_isa

log = logging.getLogger("comfyx.backends.intel")

# oneDNN's ISA levels as IPEX 2.8 names them (csrc/cpu/aten/utils/isa_help.cpp) that have VNNI,
# the int8 dot-product instructions; "WrongLevel" covers both pre-AVX2 and post-AMX levels.
VNNI_LEVELS = ("AVX2_VNNI", "AVX512_VNNI", "AVX512_BF16", "AMX")
VNNI_FLAGS = ("avx512_vnni", "avx_vnni", "amx_int8")
# oneDNN runs the int8 matmuls, so its ISA level (ONEDNN_MAX_CPU_ISA included) is the one the
# check reads; torch's default "x86" engine would run them with FBGEMM, which ignores that limit.
QUANTIZED_ENGINE = "onednn"

def isa_problem(onednn_level: str, flags: set[str], max_isa: str | None) -> str | None:
    """Why oneDNN cannot run int8 matmuls with VNNI here, given its ISA level, or None.

    oneDNN decides; the CPU's flags and ``ONEDNN_MAX_CPU_ISA`` explain its answer. A level
    IPEX 2.8 cannot name ("WrongLevel") on a CPU with VNNI and no limit set is newer than AMX.
    """
    vnni = [f for f in VNNI_FLAGS if f in flags]
    if onednn_level in VNNI_LEVELS or (onednn_level == "WrongLevel" and vnni and not max_isa):
        return None
    return (f"int8 needs VNNI ({' / '.join(VNNI_FLAGS)}), which oneDNN cannot use here "
            f"(oneDNN ISA level {onednn_level}; {describe_isa(flags, max_isa)})")


def problem(model, torch: ModuleType) -> str | None:
    """Why ``model`` cannot be quantized to int8 here, or None."""
    weight = next(model.parameters())
    if weight.device.type != "cpu":
        return (f"int8 runs on the CPU only: IPEX 2.8's dynamic quantization makes torch.ao quantized "
                f"Linear layers, which have no {weight.device.type} kernels")
    if weight.dtype != torch.float32:
        return f"int8 quantizes float32 weights, not {weight.dtype}"
    if QUANTIZED_ENGINE not in torch.backends.quantized.supported_engines:
        return f"this torch build has no {QUANTIZED_ENGINE} quantized engine"
    import intel_extension_for_pytorch as ipex

    return isa_problem(ipex._C._get_current_onednn_isa_level(), cpu_flags(), os.environ.get("ONEDNN_MAX_CPU_ISA"))


def quantize(model, torch: ModuleType) -> int:
    """Quantize ``model``'s ``torch.nn.Linear`` layers to int8 in place; returns how many.

    Only layers of exactly torch's class are quantized: the caller first gives ComfyUI's
    plain layers that class. A refusal is logged and leaves the model as it is (0).
    """
    name = type(model).__name__
    why = problem(model, torch)
    if why:
        log.warning("comfyx ipex: int8 not applied, %s keeps float32: %s", name, why)
        return 0
    import intel_extension_for_pytorch as ipex

    with torch.no_grad(), _quantized_engine(torch, QUANTIZED_ENGINE):
        prepared = ipex.quantization.prepare(model, ipex.quantization.default_dynamic_qconfig_mapping,
                                             inplace=True, bn_folding=False)
        converted = ipex.quantization.convert(prepared, inplace=True)
    if converted is not model:
        raise RuntimeError("ipex.quantization.convert(inplace=True) returned a new module; ComfyUI holds the old one")
    count = 0
    for module in model.modules():
        if is_quantized(module):
            module.register_state_dict_pre_hook(_no_float_weights)
            count += 1
    log.info("comfyx ipex: int8: %d Linear layers of %s quantized (IPEX dynamic quantization, oneDNN %s)",
             count, name, ipex._C._get_current_onednn_isa_level())
    return count


def is_quantized(module) -> bool:
    """A Linear layer holding int8 copies of its weights (what ``convert`` puts in place)."""
    from torch.ao.nn.quantized.dynamic import Linear  # torch is imported by ComfyUI by now

    return isinstance(module, Linear)


def _no_float_weights(module, prefix: str, keep_vars: bool) -> None:
    # ComfyUI reads weights by name to merge models, apply LoRAs or save: an int8 layer's
    # state dict has packed int8 data instead, on which ComfyUI would fail obscurely
    raise RuntimeError(
        f"{prefix.rstrip('.')} runs in int8 (--ipex-int8) and has no float weights: ComfyUI cannot read or "
        "patch it (model merging, LoRA, saving a checkpoint); start comfyx without --ipex-int8 for this workflow")


@contextmanager
def _quantized_engine(torch: ModuleType, engine: str) -> Iterator[None]:
    # weights are packed for the engine current at convert time and keep it afterwards
    previous = torch.backends.quantized.engine
    torch.backends.quantized.engine = engine
    try:
        yield
    finally:
        torch.backends.quantized.engine = previous
