"""What accelerators this process can see, for ``comfyx doctor``.

Imports torch (and torch_xla only if asked), so never call it before ComfyUI's
``main.py`` has set up the environment in a serving process.
"""

from __future__ import annotations


def probe_accelerators(include_xla: bool = True) -> dict:
    """CUDA, XPU and XLA devices with their properties, or why none are seen."""
    try:
        import torch
    except ImportError as err:
        reason = f"torch is not importable: {err}"
        return {"cuda": _none(reason), "xpu": _none(reason), "xla": _none(reason)}
    return {
        "cuda": _cuda(torch),
        "xpu": _xpu(torch),
        "xla": _xla() if include_xla else _none("not probed"),
    }


def _none(reason: str) -> dict:
    return {"available": False, "devices": [], "reason": reason}


def _cuda(torch) -> dict:
    if not torch.cuda.is_available():
        built = torch.version.cuda
        why = "torch is a CPU-only build" if built is None else f"no CUDA device visible (torch built for CUDA {built})"
        return _none(why)
    devices = []
    for index in range(torch.cuda.device_count()):
        props = torch.cuda.get_device_properties(index)
        devices.append({
            "index": index,
            "name": props.name,
            "compute_capability": f"{props.major}.{props.minor}",
            "total_memory_bytes": props.total_memory,
        })
    return {"available": True, "devices": devices, "reason": "", "cuda_version": torch.version.cuda}


def _xpu(torch) -> dict:
    if not hasattr(torch, "xpu"):
        return _none(f"torch {torch.__version__} has no torch.xpu")
    if not torch.xpu.is_available():
        return _none("no Intel XPU device visible")
    devices = []
    for index in range(torch.xpu.device_count()):
        props = torch.xpu.get_device_properties(index)
        devices.append({"index": index, "name": props.name, "total_memory_bytes": props.total_memory})
    return {"available": True, "devices": devices, "reason": ""}


def _xla() -> dict:
    from comfyx.backends import tpu

    problem = tpu.auto_problem()  # the check --backend auto makes: torch_xla's CPU fallback is no accelerator
    if problem is not None:
        return _none(problem)
    import torch_xla.core.xla_model as xm
    import torch_xla.runtime as xr

    devices = [str(d) for d in xm.get_xla_supported_devices()]
    return {"available": bool(devices), "devices": devices, "reason": "" if devices else "no XLA device",
            "pjrt_device": xr.device_type()}
