"""Nodes the engine's tests and benchmark load into a real ComfyUI (as a custom node file).

They follow ComfyUI's node protocol (V1 classes and one V3 ``io.ComfyNode``) and
exercise what the engine must get right: synchronous nodes that block without
holding the GIL, side effects that must happen exactly once, tensors that must not
be copied, and V3 hidden inputs.
"""

from __future__ import annotations

import gc
import threading
import time
from pathlib import Path

import torch
from comfy.comfy_types import IO
from comfy_api.latest import io


class ComfyxBlockingSleep:
    """Waits like an API call, a download or a file write: blocks, but not on the GIL."""

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"image": ("IMAGE",), "seconds": ("FLOAT", {"default": 0.5, "min": 0.0, "max": 60.0})}}

    RETURN_TYPES = ("IMAGE",)
    FUNCTION = "sleep"
    CATEGORY = "_for_testing/comfyx"

    def sleep(self, image, seconds):
        time.sleep(seconds)
        return (image,)


_rendezvous: dict[str, threading.Barrier] = {}
_rendezvous_lock = threading.Lock()


class ComfyxRendezvous:
    """Blocks until `parties` nodes with the same key wait at once: completes only where they
    run concurrently (run one after another, the first times out and fails)."""

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"image": ("IMAGE",), "key": ("STRING", {"default": "branches"}),
                             "parties": ("INT", {"default": 4, "min": 1}),
                             "timeout": ("FLOAT", {"default": 60.0, "min": 0.0})}}

    RETURN_TYPES = ("IMAGE",)
    FUNCTION = "meet"
    CATEGORY = "_for_testing/comfyx"

    def meet(self, image, key, parties, timeout):
        with _rendezvous_lock:
            barrier = _rendezvous.setdefault(key, threading.Barrier(parties))
        try:
            barrier.wait(timeout)
        except threading.BrokenBarrierError:
            raise RuntimeError(f"only {barrier.n_waiting} of {parties} nodes ran at the same time") from None
        return (image,)


_signals: dict[str, threading.Event] = {}


def _signal(key: str) -> threading.Event:
    with _rendezvous_lock:
        return _signals.setdefault(key, threading.Event())


class ComfyxSignalThenWrite:
    """Output node whose side effect is under way when others see it start: sets the signal `key`,
    then after `seconds` appends `line` to `path`."""

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"value": (IO.ANY, {}), "key": ("STRING", {}), "path": ("STRING", {}),
                             "line": ("STRING", {}), "seconds": ("FLOAT", {"default": 0.5, "min": 0.0})}}

    RETURN_TYPES = ()
    FUNCTION = "write"
    OUTPUT_NODE = True
    CATEGORY = "_for_testing/comfyx"

    def write(self, value, key, path, line, seconds):
        _signal(key).set()
        time.sleep(seconds)
        with Path(path).open("a") as file:
            file.write(line + "\n")
        return {"ui": {"lines": [line]}}


class ComfyxInterruptOnSignal:
    """Waits for the signal `key`, then interrupts the prompt as POST /interrupt does, and stops there."""

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"value": (IO.ANY, {}), "key": ("STRING", {}),
                             "timeout": ("FLOAT", {"default": 60.0, "min": 0.0})}}

    RETURN_TYPES = (IO.ANY,)
    FUNCTION = "interrupt"
    CATEGORY = "_for_testing/comfyx"

    def interrupt(self, value, key, timeout):
        import comfy.model_management

        if not _signal(key).wait(timeout):
            raise RuntimeError(f"signal {key!r} was not set within {timeout} s")
        comfy.model_management.interrupt_current_processing()
        comfy.model_management.throw_exception_if_processing_interrupted()
        return (value,)


class ComfyxBusyLoop:
    """CPU-bound pure-Python work that holds the GIL."""

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"image": ("IMAGE",), "iterations": ("INT", {"default": 1000000, "min": 0})}}

    RETURN_TYPES = ("IMAGE",)
    FUNCTION = "spin"
    CATEGORY = "_for_testing/comfyx"

    def spin(self, image, iterations):
        total = 0
        for i in range(iterations):
            total += i
        return (image,)


class ComfyxProgressSteps:
    """Reports progress through ComfyUI's ProgressBar, like a sampler does."""

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"image": ("IMAGE",), "steps": ("INT", {"default": 4, "min": 1})}}

    RETURN_TYPES = ("IMAGE",)
    FUNCTION = "work"
    CATEGORY = "_for_testing/comfyx"

    def work(self, image, steps):
        import comfy.utils

        bar = comfy.utils.ProgressBar(steps)
        for step in range(steps):
            time.sleep(0.01)
            bar.update_absolute(step + 1, steps)
        return (image,)


class ComfyxAppendLine:
    """Output node with a side effect: appends one line to a file each time it runs."""

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"value": (IO.ANY, {}), "path": ("STRING", {}), "line": ("STRING", {})}}

    RETURN_TYPES = ()
    FUNCTION = "append"
    OUTPUT_NODE = True
    CATEGORY = "_for_testing/comfyx"

    def append(self, value, path, line):
        with Path(path).open("a") as file:
            file.write(line + "\n")
        return {"ui": {"lines": [line]}}


class ComfyxTensorSource:
    """Makes an IMAGE, a LATENT and a MASK and reports where their data lives (``after``: only to order it)."""

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"size": ("INT", {"default": 8, "min": 1})}, "optional": {"after": (IO.ANY, {})}}

    RETURN_TYPES = ("IMAGE", "LATENT", "MASK")
    FUNCTION = "make"
    CATEGORY = "_for_testing/comfyx"

    def make(self, size, after=None):
        image = torch.rand(1, size, size, 3)
        latent = {"samples": torch.rand(1, 4, size, size)}
        mask = torch.rand(1, size, size)
        ptrs = [image.data_ptr(), latent["samples"].data_ptr(), mask.data_ptr()]
        return {"ui": {"ptrs": ptrs}, "result": (image, latent, mask)}


class ComfyxTensorPointers:
    """Reports where the data of the tensors it receives lives, and which thread ran it."""

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"image": ("IMAGE",), "latent": ("LATENT",), "mask": ("MASK",)}}

    RETURN_TYPES = ()
    FUNCTION = "report"
    OUTPUT_NODE = True
    CATEGORY = "_for_testing/comfyx"

    def report(self, image, latent, mask):
        ptrs = [image.data_ptr(), latent["samples"].data_ptr(), mask.data_ptr()]
        return {"ui": {"ptrs": ptrs, "thread": [threading.current_thread().name]}}


class ComfyxThreadName:
    """Reports which thread ran it: an IMAGE node, outside the device lane, so the engine may hand it to a worker."""

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"image": ("IMAGE",)}}

    RETURN_TYPES = ()
    FUNCTION = "report"
    OUTPUT_NODE = True
    CATEGORY = "_for_testing/comfyx"

    def report(self, image):
        return {"ui": {"thread": [threading.current_thread().name]}}


class ComfyxGcFrozen:
    """Reports how many objects the cyclic garbage collector leaves out (``gc.freeze``)."""

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {}}

    RETURN_TYPES = ()
    FUNCTION = "report"
    OUTPUT_NODE = True
    CATEGORY = "_for_testing/comfyx"

    def report(self):
        return {"ui": {"frozen": [gc.get_freeze_count()]}}


class ComfyxV3Hidden(io.ComfyNode):
    """A V3 node with hidden inputs: adds one and reports its own id and the prompt's size."""

    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="ComfyxV3Hidden",
            category="_for_testing/comfyx",
            inputs=[io.Int.Input("value", default=0)],
            outputs=[io.Int.Output()],
            hidden=[io.Hidden.unique_id, io.Hidden.prompt],
            is_output_node=True,
        )

    @classmethod
    def execute(cls, value) -> io.NodeOutput:
        return io.NodeOutput(value + 1, ui={"seen": [cls.hidden.unique_id, len(cls.hidden.prompt)]})


NODE_CLASS_MAPPINGS = {
    "ComfyxBlockingSleep": ComfyxBlockingSleep,
    "ComfyxBusyLoop": ComfyxBusyLoop,
    "ComfyxRendezvous": ComfyxRendezvous,
    "ComfyxProgressSteps": ComfyxProgressSteps,
    "ComfyxAppendLine": ComfyxAppendLine,
    "ComfyxTensorSource": ComfyxTensorSource,
    "ComfyxTensorPointers": ComfyxTensorPointers,
    "ComfyxThreadName": ComfyxThreadName,
    "ComfyxV3Hidden": ComfyxV3Hidden,
    "ComfyxGcFrozen": ComfyxGcFrozen,
    "ComfyxSignalThenWrite": ComfyxSignalThenWrite,
    "ComfyxInterruptOnSignal": ComfyxInterruptOnSignal,
}
