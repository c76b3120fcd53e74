"""Which nodes may run at the same time.

The stated policy, per node class:

- a node that handles models or latents — any input or output of a type in
  :data:`DEVICE_TYPES` (models, text encoders, VAEs, latents, conditioning, ...) —
  needs the *device lane*, which has one slot: at most one such node runs at any
  moment, so concurrent branches never hold more than one node's working memory on
  the accelerator (ComfyUI's model manager still decides which models stay loaded);
- an output node (``OUTPUT_NODE``) needs the *output lane*, also one slot: output
  nodes pick file names by looking at what is already on disk (SaveImage's counter),
  so two of them at once could write the same file;
- a node class seen to keep its worker thread busy on the CPU (thread CPU time at least
  :data:`CPU_BOUND_RATIO` of its wall time, divided among the jobs that were running
  with it; pure-Python loops, CPU tensor math) needs the
  *CPU lane*, one slot: such nodes gain nothing from running at once — Python's GIL or
  the cores are the limit — and only slow each other down; the engine learns this from
  the node's own runs (:class:`CpuBoundTracker`);
- every other node (downloads, API calls, file reads, subprocesses, GPU waits) runs in
  parallel with the rest, up to the number of pool workers.

Where ComfyUI's device is the CPU, device-lane nodes never leave the prompt worker's thread
(:func:`may_run_on_a_worker`).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Iterable
from enum import Enum
from typing import Any

DEVICE_TYPES = frozenset({
    "MODEL", "CLIP", "VAE", "LATENT", "CONDITIONING", "CONTROL_NET", "CLIP_VISION", "CLIP_VISION_OUTPUT",
    "STYLE_MODEL", "GLIGEN", "UPSCALE_MODEL", "NOISE", "GUIDER", "SAMPLER", "SIGMAS", "HOOKS", "MODEL_PATCH",
    "AUDIO_ENCODER", "AUDIO_ENCODER_OUTPUT", "PHOTOMAKER", "INPAINT_MODEL",
})


CPU_BOUND_RATIO = 0.5
MIN_CPU_SECONDS = 0.005


def worth_offloading(in_flight: int, ready: int, external_blocks: int) -> bool:
    """Whether a synchronous node should go to a worker: only when another node may run before it ends.

    Another node may run when a job is on a worker (``in_flight``), another node is ready
    (``ready`` counts this one too), or a node waits on an external block (``external_blocks``):
    an offloaded or async node whose work may be done but whose result the executor has
    not yet taken, so that its successors are about to become ready. Run inline then, and
    a node that waits for one of them would wait with the event loop blocked, forever.
    """
    return in_flight > 0 or ready > 1 or external_blocks > 0


class Lane(Enum):
    DEVICE = "device"
    OUTPUT = "output"
    CPU = "cpu"


def may_run_on_a_worker(lanes: frozenset[Lane], device_is_cpu: bool) -> bool:
    """Whether a node that needs ``lanes`` may be handed to a worker thread at all.

    Not a device-lane node where ComfyUI's device is the CPU: torch's CPU operators run on
    OpenMP, and each thread that runs one keeps an OpenMP team of its own for the life of
    the thread (BMF's workers live as long as the server). With more OpenMP threads than
    cores, libgomp waits for work with a much shorter spin (its throttled spin count), so
    every parallel region afterwards wakes sleeping threads: with one idle team alive on
    another thread, 64-channel 32x32 convolutions on the prompt thread took 1.5x as long
    (2 CPUs), and the tiny txt2img ran 11% slower than on stock's engine once its text
    encoders had run on a worker. The device lane runs one node at a time anyway; the cost
    is that a node which becomes ready while a device node runs inline starts after it.
    """
    return not (device_is_cpu and Lane.DEVICE in lanes)


def node_types(node_class: Any) -> set[str]:
    """The input and output type names a node class declares (ComfyUI's node protocol)."""
    types: set[str] = set()
    for category in ("required", "optional"):
        for spec in (node_class.INPUT_TYPES().get(category) or {}).values():
            if spec and isinstance(spec[0], str):
                types.add(spec[0])
    types.update(t for t in getattr(node_class, "RETURN_TYPES", ()) if isinstance(t, str))
    return types


def lanes_for(node_class: Any) -> frozenset[Lane]:
    """The single-slot lanes a node class needs (none: it runs alongside anything)."""
    lanes = set()
    if any(t in DEVICE_TYPES for t in node_types(node_class)):
        lanes.add(Lane.DEVICE)
    if getattr(node_class, "OUTPUT_NODE", False):
        lanes.add(Lane.OUTPUT)
    return frozenset(lanes)


class CpuBoundTracker:
    """Remembers, per node class, whether its last run kept its thread busy on the CPU."""

    def __init__(self) -> None:
        self._cpu_bound: dict[Any, bool] = {}

    def record(self, key: Any, cpu_seconds: float, wall_seconds: float, running: int = 1) -> None:
        """One run of ``key``: CPU time of the thread that ran it, wall time, and how many jobs ran meanwhile."""
        share = CPU_BOUND_RATIO * wall_seconds / max(running, 1)
        self._cpu_bound[key] = cpu_seconds >= MIN_CPU_SECONDS and cpu_seconds >= share

    def lanes(self, key: Any) -> frozenset[Lane]:
        return frozenset({Lane.CPU}) if self._cpu_bound.get(key, False) else frozenset()


class Limiter:
    """Slots for one event loop: ``workers`` in all, one per lane."""

    def __init__(self, workers: int):
        if workers < 1:
            raise ValueError("a limiter needs at least one worker")
        self._all = asyncio.Semaphore(workers)
        self._lanes = {lane: asyncio.Semaphore(1) for lane in Lane}

    @contextlib.asynccontextmanager
    async def slot(self, lanes: Iterable[Lane]) -> AsyncIterator[None]:
        """Hold a slot of each of ``lanes`` (always taken in the same order) and a worker."""
        async with contextlib.AsyncExitStack() as stack:
            for lane in Lane:
                if lane in lanes:
                    await stack.enter_async_context(self._lanes[lane])
            await stack.enter_async_context(self._all)
            yield
