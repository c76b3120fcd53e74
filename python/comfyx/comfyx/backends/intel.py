"""Intel: stock ``torch.xpu`` first, Intel Extension for PyTorch (IPEX) 2.8 as an option.

ComfyUI 0.3.64 imports IPEX under a bare ``except`` (a torch/IPEX version mismatch
vanishes) and calls ``ipex.optimize(graph_mode=True)``, a deprecated TorchScript path,
only on XPU. comfyx turns that call off and instead runs ``ipex.optimize`` eagerly, on
XPU and on Xeon CPUs, after checking the version pair and the CPU's instruction set;
every check that fails says what is wrong and leaves the model to plain torch.
``--ipex-int8`` adds int8 Linear layers to the diffusion model where the CPU supports
them (:mod:`comfyx.backends.intel_int8`).
"""

from __future__ import annotations

import importlib.metadata
import logging
import os
import sys
from types import ModuleType

from comfyx.backends import intel_int8
from comfyx.backends.cpuinfo import cpu_flags, describe_isa
from comfyx.backends.settings import IntelSettings
from comfyx.comfyui.hooks import after_import

log = logging.getLogger("comfyx.backends.intel")

IPEX_DIST = "intel-extension-for-pytorch"

_WEIGHTS_AT_OPTIMIZE = "_comfyx_ipex_weights"  # ComfyUI's weight-patch id when IPEX saw the module


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


def backend_problem(torch: ModuleType, cpu: bool = False) -> str | None:
    """Why ``--backend ipex`` cannot run: it needs an XPU, or IPEX for the CPU path."""
    if xpu_available(torch) and not cpu:
        return None
    problem = ipex_problem(torch)
    if problem:
        why = "ComfyUI's --cpu asks for the CPU" if cpu else "no Intel XPU device"
        return f"{why} and IPEX for the CPU cannot be used: {problem}"
    return None


def describe(torch: ModuleType, cpu: bool = False) -> str:
    """What ``--backend ipex`` runs on; ``cpu``: ComfyUI's --cpu asks for the CPU path."""
    ipex = ipex_version() or "not installed"
    if xpu_available(torch) and not cpu:
        return f"Intel XPU {torch.xpu.get_device_name(0)} (torch {torch.__version__}, IPEX {ipex})"
    return f"CPU with IPEX {ipex} (torch {torch.__version__}, no Intel XPU)"


def bf16_prepack_problem(onednn_bf16: bool, flags: set[str], max_isa: str | None) -> str | None:
    """Why IPEX's bf16 weight prepack cannot run, given oneDNN's answer, or None.

    oneDNN decides (IPEX asserts on ``onednn_has_bf16_support``); the CPU's flags and
    ``ONEDNN_MAX_CPU_ISA`` only explain its answer.
    """
    if onednn_bf16:
        return None
    return (f"IPEX's bf16 weight prepack needs AVX-512 (avx512bw/vl/dq) or AVX-NE-CONVERT, which oneDNN "
            f"cannot use here ({describe_isa(flags, max_isa)})")


def optimize(model, torch: ModuleType, int8: bool = False):
    """``ipex.optimize`` for inference, or ``model`` unchanged with a warning saying why.

    Weights are prepacked (IPEX replaces Conv2d/Linear by its own modules holding oneDNN
    layouts), ComfyUI's layers included (:func:`_expose_torch_layers`). BatchNorm
    folding is off: it returns a new ``fx.GraphModule``,
    and ComfyUI keeps references to the module it loaded. ``int8``: Linear layers are
    quantized first where supported (:mod:`comfyx.backends.intel_int8`), the rest prepacked.
    """
    weight = next(model.parameters())
    dtype = weight.dtype
    problem = ipex_problem(torch)
    if problem is None and dtype != torch.float32 and dtype != torch.bfloat16:
        problem = f"comfyx runs IPEX with float32 or bfloat16 weights, not {dtype}"
    if problem is None and dtype == torch.bfloat16 and weight.device.type == "cpu":
        import intel_extension_for_pytorch as ipex

        problem = bf16_prepack_problem(ipex._C.onednn_has_bf16_support(), cpu_flags(),
                                       os.environ.get("ONEDNN_MAX_CPU_ISA"))
    if problem:
        _leave_to_torch(model, problem, int8)
        return model
    import intel_extension_for_pytorch as ipex

    exposed = _expose_torch_layers(model, torch)
    quantized = intel_int8.quantize(model, torch) if int8 else 0
    try:
        with torch.no_grad():
            optimized = ipex.optimize(model.eval(), dtype=dtype, inplace=True, conv_bn_folding=False,
                                      linear_bn_folding=False)
    except (RuntimeError, AssertionError, NotImplementedError) as err:
        log.warning("comfyx ipex: ipex.optimize failed for %s (%s); its layers are not prepacked: %s",
                    type(model).__name__, dtype, err)
        return model
    if optimized is not model:
        raise RuntimeError("ipex.optimize(inplace=True) returned a new module; ComfyUI holds the old one")
    prepacked = sum(1 for m in model.modules() if is_prepacked(m))
    log.info("comfyx ipex: optimized %s (%s) with IPEX %s: %d of %d ComfyUI layers prepacked",
             type(model).__name__, dtype, ipex_version(), prepacked, exposed - quantized)
    return model


def _leave_to_torch(model, problem: str, int8: bool) -> None:
    also = ", int8 not applied" if int8 else ""
    log.warning("comfyx ipex: %s is left to plain torch%s: %s", type(model).__name__, also, problem)


def _expose_torch_layers(model, torch: ModuleType) -> int:
    """Give ComfyUI's plain layers their torch class, so that IPEX prepacks them; returns how many.

    IPEX prepacks only modules whose class is exactly ``torch.nn.Conv2d``, ``Linear``, ...;
    ComfyUI builds its models from ``comfy.ops`` subclasses. One that neither casts weights
    nor carries weight functions (LoRA in low-VRAM mode) runs torch's own ``forward``, so it
    can take torch's class without changing what it computes.
    """
    bases = (torch.nn.Linear, torch.nn.Conv1d, torch.nn.Conv2d, torch.nn.Conv3d)
    exposed = 0
    for module in model.modules():
        cls = type(module)
        base = next((b for b in bases if issubclass(cls, b)), None)
        if (base is None or cls is base or not cls.__module__.startswith("comfy.")
                or getattr(module, "comfy_cast_weights", False) or getattr(module, "weight_function", None)
                or getattr(module, "bias_function", None)):
            continue
        module.__class__ = base
        exposed += 1
    return exposed


def install(torch: ModuleType, settings: IntelSettings) -> None:
    """Replace ComfyUI's deprecated ``graph_mode`` optimize with :func:`optimize` on model load."""
    after_import("comfy.model_management", lambda mm: _patch_model_load(mm, torch, settings.int8))


def _patch_model_load(model_management: ModuleType, torch: ModuleType, int8_requested: bool) -> None:
    args = model_management.args
    if args.disable_ipex_optimize:
        also = "; --ipex-int8 is not applied" if int8_requested else ""
        log.warning("comfyx ipex: --disable-ipex-optimize: models run on plain torch%s", also)
        return
    args.disable_ipex_optimize = True  # turns off ComfyUI's own TorchScript (graph_mode) call on XPU
    original = model_management.LoadedModel.model_load

    def model_load(self, lowvram_model_memory=0, force_patch_weights=False):
        module, patches = self.model.model, self.model.patches_uuid
        if getattr(module, _WEIGHTS_AT_OPTIMIZE, patches) != patches and _holds_weight_copies(module):
            # IPEX's modules hold prepacked (or int8) copies: weights ComfyUI writes now would be
            # ignored, or fail on layers that no longer have a weight tensor
            raise RuntimeError(
                f"{type(module).__name__}'s weights were prepacked by IPEX with other weight patches "
                "(LoRA) than this run uses; restart ComfyUI, or start with --disable-ipex-optimize")
        real_model = original(self, lowvram_model_memory, force_patch_weights)
        if not hasattr(real_model, _WEIGHTS_AT_OPTIMIZE):
            int8 = int8_requested and _is_diffusion_model(real_model)
            if lowvram_model_memory > 0:  # partly offloaded weights move between devices: no prepack
                _leave_to_torch(real_model, "its weights are partly offloaded (low-VRAM mode)", int8)
                return real_model
            optimize(real_model, torch, int8=int8)
            setattr(real_model, _WEIGHTS_AT_OPTIMIZE, patches)  # decided once per module, success or not
        return real_model

    model_management.LoadedModel.model_load = model_load


def _is_diffusion_model(model) -> bool:
    """The UNet/DiT wrapper (``comfy.model_base.BaseModel``), not a text encoder or VAE."""
    return isinstance(model, sys.modules["comfy.model_base"].BaseModel)


def _holds_weight_copies(model) -> bool:
    return any(is_prepacked(m) or intel_int8.is_quantized(m) for m in model.modules())


def is_prepacked(module) -> bool:
    """A layer IPEX replaced by its own, holding weights in oneDNN's layout."""
    return type(module).__module__.startswith("intel_extension_for_pytorch")
