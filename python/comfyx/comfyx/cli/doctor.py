"""``comfyx doctor``: what comfyx sees of this machine, as text or one JSON object."""

from __future__ import annotations

import argparse
import importlib
import importlib.metadata
import importlib.util
import json
import os
import platform
import sys
from pathlib import Path

from comfyx import PINNED_COMFYUI_COMMIT, PINNED_COMFYUI_VERSION, __version__, engine
from comfyx.backends import AUTO_ORDER, auto_pick, probe_accelerators
from comfyx.comfyui import ComfyUINotFoundError, find_comfyui
from comfyx.engine import EngineUnavailableError
from comfyx.fastpath import FastPathUnavailableError
from comfyx.paths import CompileCaches, PathSettings, from_args
from comfyx.settings import tree
from comfyx.settings.spec import SettingsError

# Distributions whose versions the report names (distribution name -> report key).
_PACKAGES = {
    "torch": "torch",
    "triton": "triton",
    "babitmf": "bmf",
    "torch-xla": "torch_xla",
    "intel-extension-for-pytorch": "ipex",
    "comfyx-kernels": "comfyx_kernels",
}


def doctor(args: argparse.Namespace) -> int:
    settings, problem = startup_settings(args)
    data = collect(settings, args.comfyui, problem)
    print(json.dumps(data, indent=2) if args.json else render_text(data))
    return 0


def startup_settings(args: argparse.Namespace) -> tuple[tree.Settings, str | None]:
    """The settings ``comfyx serve`` would start with here (its flags aside), or the defaults and why it
    would not start."""
    try:
        return tree.parse(args, os.environ, "serve").settings, None
    except (SettingsError, EngineUnavailableError, FastPathUnavailableError) as err:
        paths = from_args(args, os.environ)
        return tree.Settings(paths=paths, compile_caches=CompileCaches.resolve(paths.cache_dir, os.environ)), str(err)


def collect(settings: tree.Settings, comfyui_dir: str | None = None, problem: str | None = None) -> dict:
    """Everything the report says, as plain JSON-able data; ``settings``: the process's (or those serve would
    start with), ``problem``: why serve would not start with them."""
    accelerators = probe_accelerators()
    comfyui = _comfyui(comfyui_dir, settings.paths)
    return {
        "comfyx": {"version": __version__},
        "python": {"version": platform.python_version(), "executable": sys.executable},
        "platform": {"system": platform.system(), "machine": platform.machine(), "cpu_count": os.cpu_count()},
        "versions": {key: _version(dist) for dist, key in _PACKAGES.items()} | {"comfyui": comfyui.get("version")},
        "accelerators": accelerators,
        "backend": _auto_backend(accelerators),
        "comfyui": comfyui,
        "engines": _engines(comfyui),
        "default_engine": settings.engine.name,
        "kernel_backends": _kernel_backends(),
        "fast_path": _fast_path(accelerators),
        "paths": _paths(settings, comfyui),
        "settings": {"changed": _changed(settings), "problem": problem},
    }


def _version(dist: str) -> str | None:
    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return None


def _comfyui(explicit: str | None, paths: PathSettings) -> dict:
    try:
        checkout = find_comfyui(explicit, paths.default_comfyui_dir)
    except ComfyUINotFoundError as err:
        return {"found": False, "version": None, "reason": str(err), "pinned_version": PINNED_COMFYUI_VERSION}
    return {
        "found": True,
        "path": str(checkout.path),
        "version": checkout.version,
        "commit": checkout.commit,
        "pinned_version": PINNED_COMFYUI_VERSION,
        "pinned_commit": PINNED_COMFYUI_COMMIT,
        "is_pinned": checkout.is_pinned,
        "warning": checkout.pin_warning(),
    }


def _auto_backend(accelerators: dict) -> dict:
    """What ``--backend auto`` would run on (:func:`comfyx.backends.auto_pick`)."""
    chosen, reasons = auto_pick(lambda key: None if accelerators[key]["available"] else accelerators[key]["reason"])
    if chosen == "cpu":
        return {"auto": "cpu", "why": f"no accelerator ({'; '.join(reasons)})"}
    key = dict(AUTO_ORDER)[chosen]
    return {"auto": chosen, "why": f"{key} devices found: {len(accelerators[key]['devices'])}"}


def _engines(comfyui: dict) -> dict:
    engines = {}
    for name in engine.ENGINES:
        reason = engine.unavailable_reason(name)
        if reason is None and not comfyui["found"]:
            reason = "no ComfyUI checkout found"
        engines[name] = {"available": reason is None, "reason": reason or ""}
    return engines


def _kernel_backends() -> dict:
    try:
        kernels = importlib.import_module("comfyx_kernels")
    except ImportError as err:
        return {"error": f"comfyx_kernels is not importable: {err}"}
    return {b.name: {"available": b.available, "reason": b.reason} for b in kernels.list_backends()}


def _fast_path(accelerators: dict) -> dict:
    """Which parts of ``--fast`` can run here, and why not (see comfyx.fastpath)."""
    from comfyx import kernels

    kernels_reason = kernels.unavailable_reason()
    capable = [d for d in accelerators["cuda"]["devices"]
               if tuple(int(n) for n in d["compute_capability"].split(".")) >= (8, 9)]
    if kernels_reason:
        fp8_reason = kernels_reason
    elif not accelerators["cuda"]["available"]:
        fp8_reason = f"fp8 GEMMs need a CUDA GPU of sm_89 or newer (cuda: {accelerators['cuda']['reason']})"
    elif not capable:
        found = ", ".join(f"{d['name']} (sm_{d['compute_capability'].replace('.', '')})"
                          for d in accelerators["cuda"]["devices"])
        fp8_reason = f"fp8 GEMMs need sm_89 or newer; found {found}: fp8 layers run dequantized"
    else:
        fp8_reason = None
    compile_reason = None
    if accelerators["cuda"]["available"] and importlib.util.find_spec("triton") is None:
        compile_reason = "torch.compile on CUDA needs Triton (pip install triton)"
    graphs_reason = compile_reason
    if graphs_reason is None and not accelerators["cuda"]["available"]:
        graphs_reason = f"CUDA graphs need a CUDA GPU (cuda: {accelerators['cuda']['reason']})"
    block_reason = fp8_reason
    if block_reason is None and importlib.util.find_spec("triton") is None:
        block_reason = "comfyx's NVFP4 / MXFP8 kernels before sm_100 are Triton's (pip install triton)"
    return {
        "kernels": {"available": kernels_reason is None, "reason": kernels_reason or "",
                    "what": "quantized checkpoints (fp8, NVFP4, MXFP8) and Flux RoPE on comfyx's kernels "
                            "(--kernels, on by default)"},
        "fp8": {"available": fp8_reason is None, "reason": fp8_reason or "",
                "what": "fp8 GEMMs for fp8 checkpoints and --quantize fp8"},
        "nvfp4_mxfp8": {"available": block_reason is None, "reason": block_reason or "",
                        "what": "NVFP4 / MXFP8 layers (comfy_quant checkpoints, --quantize nvfp4|mxfp8) multiplying "
                                "on comfyx's kernels with the weight kept 4- or 8-bit; elsewhere dequantized"},
        "compile": {"available": compile_reason is None, "reason": compile_reason or "",
                    "what": "--compile: speed-mode compile of every diffusion model, persistent caches"},
        "cuda_graphs": {"available": graphs_reason is None, "reason": graphs_reason or "",
                        "what": "--compile-cuda-graphs (on with --fast): a model compiled whole (a UNet) replays "
                                "its steps as CUDA graphs; ComfyUI then runs on torch's own CUDA allocator "
                                "(--disable-cuda-malloc)"},
    }


def _paths(settings: tree.Settings, comfyui: dict) -> dict:
    result = {
        "comfyx_cache": str(settings.paths.cache_dir),
        "comfyx_data": str(settings.paths.data_dir),
        "triton_cache": str(settings.compile_caches.triton),
        "inductor_cache": str(settings.compile_caches.inductor),
        "compile_artifacts": str(settings.compile_caches.artifacts),
        "calibration": str(settings.paths.calibration),
        "xla_cache": str(settings.paths.xla_cache),
    }
    if comfyui["found"]:
        root = Path(comfyui["path"])
        result["comfyui_models"] = str(root / "models")
        extra = root / "extra_model_paths.yaml"
        result["extra_model_paths"] = str(extra) if extra.is_file() else None
    return result


def _changed(settings: tree.Settings) -> dict[str, str]:
    """The settings that differ from their defaults, by flag (directories and derived ones aside)."""
    changed = {}
    for row in tree.table():
        if row["group"] == "paths":
            continue
        value = getattr(getattr(settings, row["group"]), row["field"])
        if value != row["default"]:
            changed[row["flag"]] = str(value)
    return changed


def render_text(data: dict) -> str:
    system = data["platform"]
    header = (
        f"comfyx {data['comfyx']['version']} on Python {data['python']['version']} "
        f"({system['system']} {system['machine']}, {system['cpu_count']} CPUs)"
    )
    lines = [header]
    lines.append("versions:")
    lines += [f"  {name:15} {version or 'not found'}" for name, version in data["versions"].items()]
    lines.append("accelerators:")
    for kind, info in data["accelerators"].items():
        if info["available"]:
            for device in info["devices"]:
                described = device if isinstance(device, str) else ", ".join(f"{k}={v}" for k, v in device.items())
                lines.append(f"  {kind:6} {described}")
        else:
            lines.append(f"  {kind:6} none: {info['reason']}")
    lines.append(f"backend: auto selects {data['backend']['auto']} ({data['backend']['why']})")
    comfyui = data["comfyui"]
    if comfyui["found"]:
        lines.append(f"comfyui: {comfyui['path']} (v{comfyui['version']}, commit {comfyui['commit'] or 'unknown'})")
        if comfyui["warning"]:
            lines.append(f"  warning: {comfyui['warning']}")
    else:
        lines.append(f"comfyui: not found: {comfyui['reason']}")
    lines.append(f"engines: serve and run default to {data['default_engine']}")
    lines += [f"  {name:7} {_availability(e)}" for name, e in data["engines"].items()]
    lines.append("kernel backends:")
    kernels = data["kernel_backends"]
    if "error" in kernels:
        lines.append(f"  {kernels['error']}")
    else:
        lines += [f"  {name:7} {_availability(k)}" for name, k in kernels.items()]
    lines.append("fast path (--fast):")
    lines += [f"  {name:11} {_availability(part)}" for name, part in data["fast_path"].items()]
    lines.append("paths:")
    lines += [f"  {name:18} {value}" for name, value in data["paths"].items()]
    changed = data["settings"]["changed"]
    lines.append("settings: " + (", ".join(f"{flag} {value}" for flag, value in changed.items()) or "the defaults"))
    if data["settings"]["problem"]:
        lines.append(f"  comfyx serve would not start: {data['settings']['problem']}")
    return "\n".join(lines)


def _availability(entry: dict) -> str:
    return "ok" if entry["available"] else f"unavailable: {entry['reason']}"
