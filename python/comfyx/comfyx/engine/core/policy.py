"""Which nodes may run at the same time.

The stated policy: a node that handles models or latents — any input or output of a
type in :data:`DEVICE_TYPES` (models, text encoders, VAEs, latents, conditioning,
...) — runs in the *device lane*, which has one slot: at most one such node runs at
any moment, so concurrent branches never hold more than one node's worth of working
memory on the accelerator (ComfyUI's model manager keeps managing which models stay
loaded, as it does for the stock executor). Every other node (file and image I/O,
API calls, text, numbers) runs in the *shared lane*, in parallel up to the number of
pool workers.
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
    SHARED = "shared"
    DEVICE = "device"


def node_types(node_class: Any) -> set[str]:
    """The input and output type names a node class declares (ComfyUI's node protocol)."""
    types: set[str] = set()
    for category in ("required", "optional"):
        for spec in (node_class.INPUT_TYPES().get(category) or {}).values():
            if spec and isinstance(spec[0], str):
                types.add(spec[0])
    types.update(t for t in getattr(node_class, "RETURN_TYPES", ()) if isinstance(t, str))
    return types


def lane_for(types: Iterable[str]) -> Lane:
    """The lane a node with these input/output types runs in."""
    return Lane.DEVICE if any(t in DEVICE_TYPES for t in types) else Lane.SHARED


class Limiter:
    """Slots per lane for one event loop: ``workers`` in all, one for the device lane."""

    def __init__(self, workers: int, device_slots: int = 1):
        if workers < 1 or device_slots < 1:
            raise ValueError("a limiter needs at least one worker and one device slot")
        self._all = asyncio.Semaphore(workers)
        self._device = asyncio.Semaphore(min(device_slots, workers))

    @contextlib.asynccontextmanager
    async def slot(self, lane: Lane) -> AsyncIterator[None]:
        """Hold a slot of ``lane`` for the duration of the block."""
        async with contextlib.AsyncExitStack() as stack:
            if lane is Lane.DEVICE:
                await stack.enter_async_context(self._device)
            await stack.enter_async_context(self._all)
            yield
