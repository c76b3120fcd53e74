"""Intel: stock ``torch.xpu`` first, Intel Extension for PyTorch (IPEX) 2.8 as an option.

ComfyUI 0.3.64 imports IPEX under a bare ``except`` (a torch/IPEX version mismatch
vanishes) and calls ``ipex.optimize(graph_mode=True)``, a deprecated TorchScript path,
only on XPU. comfyx turns that call off and instead runs ``ipex.optimize`` eagerly, on
XPU and on Xeon CPUs, after checking the version pair and the CPU's instruction set;
every check that fails says what is wrong and leaves the model to plain torch.
"""

from __future__ import annotations

import importlib.metadata
import logging
from pathlib import Path
from types import ModuleType

from comfyx.comfyui.hooks import after_import

log = logging.getLogger("comfyx.backends.intel")

IPEX_DIST = "intel-extension-for-pytorch"

# IPEX's bf16 weight prepack on CPU needs one of these (its own error message names them).
_BF16_PREPACK_ISAS = ({"avx512bw", "avx512vl", "avx512dq"}, {"avx_ne_convert"})

_OPTIMIZED = "_comfyx_ipex_optimized"


def xpu_available(torch: ModuleType) -> bool:
    """Whether stock torch sees an Intel GPU (``torch.xpu``), IPEX or not."""
    try:
        return hasattr(torch, "xpu") and torch.xpu.is_available()
    except RuntimeError:  # an XPU build without a driver raises instead of answering
        return False


def ipex_version() -> str | None:
    try:
        return importlib.metadata.version(IPEX_DIST)
    except importlib.metadata.PackageNotFoundError:
        return None


def version_pair_problem(torch_version: str, ipex: str | None) -> str | None:
    """Why this torch and IPEX cannot work together (IPEX X.Y needs torch X.Y), or None."""
    if ipex is None:
        return f"{IPEX_DIST} is not installed"
    wanted = ".".join(ipex.split("+")[0].split(".")[:2])
    have = ".".join(torch_version.split("+")[0].split(".")[:2])
    if wanted != have:
        return f"{IPEX_DIST} {ipex} needs torch {wanted}.*, but torch is {torch_version}"
    return None


def ipex_problem(torch: ModuleType) -> str | None:
    """Why IPEX cannot be used in this process, or None when ``import`` succeeded."""
    problem = version_pair_problem(torch.__version__, ipex_version())
    if problem:
        return problem
    try:
        import intel_extension_for_pytorch  # noqa: F401
    except Exception as err:  # noqa: BLE001 - IPEX raises many kinds of errors on a broken install
        return f"importing intel_extension_for_pytorch failed: {type(err).__name__}: {err}"
    return None


def backend_problem(torch: ModuleType) -> str | None:
    """Why ``--backend ipex`` cannot run: it needs an XPU, or IPEX for the CPU path."""
    if xpu_available(torch):
        return None
    problem = ipex_problem(torch)
    if problem:
        return f"no Intel XPU device and IPEX for the CPU cannot be used: {problem}"
    return None


def describe(torch: ModuleType) -> str:
    ipex = ipex_version() or "not installed"
    if xpu_available(torch):
        return f"Intel XPU {torch.xpu.get_device_name(0)} (torch {torch.__version__}, IPEX {ipex})"
    return f"CPU with IPEX {ipex} (torch {torch.__version__}, no Intel XPU)"


def cpu_flags(cpuinfo: Path = Path("/proc/cpuinfo")) -> set[str]:
    """The CPU's feature flags as the kernel reports them (empty where unknown)."""
    try:
        text = cpuinfo.read_text()
    except OSError:
        return set()
    for line in text.splitlines():
        if line.startswith("flags"):
            return set(line.split(":", 1)[1].split())
    return set()


def bf16_prepack_problem(flags: set[str]) -> str | None:
    """Why IPEX's bf16 weight prepack cannot run on a CPU with ``flags``, or None."""
    if any(isa <= flags for isa in _BF16_PREPACK_ISAS):
        return None
    have = sorted(f for f in flags if f.startswith(("avx", "amx")))
    return ("IPEX's bf16 weight prepack needs AVX-512 (avx512bw/vl/dq) or AVX-NE-CONVERT; "
            f"this CPU has {', '.join(have) or 'none of them'}")


def optimize(model, torch: ModuleType):
    """``ipex.optimize`` for inference, or ``model`` unchanged with a warning saying why."""
    if hasattr(model, _OPTIMIZED):  # decided once per module: ComfyUI reloads models often
        return model
    weight = next(model.parameters())
    dtype = weight.dtype
    problem = ipex_problem(torch)
    if problem is None and dtype == torch.bfloat16 and weight.device.type == "cpu":
        problem = bf16_prepack_problem(cpu_flags())
    if problem is None and dtype != torch.float32 and dtype != torch.bfloat16:
        problem = f"comfyx runs IPEX with float32 or bfloat16 weights, not {dtype}"
    if problem:
        log.warning("comfyx ipex: %s is left to plain torch: %s", type(model).__name__, problem)
        setattr(model, _OPTIMIZED, False)
        return model
    import intel_extension_for_pytorch as ipex

    try:
        with torch.no_grad():
            optimized = ipex.optimize(model.eval(), dtype=dtype, inplace=True)
    except (RuntimeError, AssertionError, NotImplementedError) as err:
        log.warning("comfyx ipex: ipex.optimize failed for %s (%s); using plain torch: %s",
                    type(model).__name__, dtype, err)
        setattr(model, _OPTIMIZED, False)
        return model
    setattr(optimized, _OPTIMIZED, True)
    log.info("comfyx ipex: optimized %s (%s) with IPEX %s", type(model).__name__, dtype, ipex_version())
    return optimized


def install(torch: ModuleType) -> None:
    """Replace ComfyUI's deprecated ``graph_mode`` optimize with :func:`optimize` on model load."""
    after_import("comfy.model_management", lambda mm: _patch_model_load(mm, torch))


def _patch_model_load(model_management: ModuleType, torch: ModuleType) -> None:
    model_management.args.disable_ipex_optimize = True  # ComfyUI's own TorchScript path, XPU only
    original = model_management.LoadedModel.model_load

    def model_load(self, lowvram_model_memory=0, force_patch_weights=False):
        real_model = original(self, lowvram_model_memory, force_patch_weights)
        if lowvram_model_memory > 0:  # partly offloaded weights move between devices: no prepack
            return real_model
        optimized = optimize(real_model, torch)
        if optimized is not real_model:
            raise RuntimeError("ipex.optimize(inplace=True) returned a new module; ComfyUI holds the old one")
        return optimized

    model_management.LoadedModel.model_load = model_load
