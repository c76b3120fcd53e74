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
- every other node (downloads, API calls, file reads, image and text work) runs in
  parallel with the rest, up to the number of pool workers.
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


class Lane(Enum):
    DEVICE = "device"
    OUTPUT = "output"


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
