"""Make ``comfy.model_management`` run on the XLA device, from inside the process.

ComfyUI starts in its CPU mode (``args.cpu``, set by backend selection), so its import
never touches CUDA; right after it is imported, the functions every other ComfyUI module
calls through ``comfy.model_management.<name>`` are replaced: the torch device, the
memory figures, and the VRAM state. HIGH_VRAM keeps weights on the device between
runs: moving them back and forth would cost transfers and new device buffers each time.
"""

from __future__ import annotations

import logging
from types import ModuleType

import psutil

log = logging.getLogger("comfyx.backends.tpu")


def xla_device():
    import torch_xla

    return torch_xla.device()


def memory_info(device) -> tuple[int, int]:
    """(free, total) bytes of the XLA device; the host's RAM on the PJRT CPU client."""
    import torch_xla.core.xla_model as xm

    try:
        info = xm.get_memory_info(device)
    except (RuntimeError, NotImplementedError):  # the CPU client reports no device memory
        info = None
    if info and info.get("bytes_limit"):
        return info["bytes_limit"] - info.get("bytes_used", 0), info["bytes_limit"]
    ram = psutil.virtual_memory()
    return ram.available, ram.total


def install_into(model_management: ModuleType) -> None:
    device = xla_device()
    get_total, get_free = model_management.get_total_memory, model_management.get_free_memory

    def is_xla(dev) -> bool:
        return dev is None or getattr(dev, "type", None) == "xla"

    def get_total_memory(dev=None, torch_total_too=False):
        if not is_xla(dev):
            return get_total(dev, torch_total_too)
        total = memory_info(dev or device)[1]
        return (total, total) if torch_total_too else total

    def get_free_memory(dev=None, torch_free_too=False):
        if not is_xla(dev):
            return get_free(dev, torch_free_too)
        free = memory_info(dev or device)[0]
        return (free, 0) if torch_free_too else free

    model_management.get_torch_device = lambda: device
    model_management.get_total_memory = get_total_memory
    model_management.get_free_memory = get_free_memory
    model_management.vram_state = model_management.VRAMState.HIGH_VRAM
    model_management.total_vram = get_total_memory(device) / (1024 * 1024)
    log.info("comfyx tpu: ComfyUI's torch device is %s (%.0f MB)", device, model_management.total_vram)
