"""Page-locked host memory for the layers a quantize at load brings back from the GPU.

``--quantize`` quantizes each Linear layer on the GPU and keeps the result where ComfyUI keeps an
unloaded model, in host memory; ComfyUI then moves the whole model to the GPU at the first
sampling. From pageable memory that move is slow: Flux's 11.4 GB of fp8 layers took about 2.8 s of
the first step on an H100 (thirteenth session, ``bench/results/e2e.md``), and the copy back after
each layer's quantize costs as much again. From page-locked memory both are DMA copies.

:class:`PinnedHost` hands out tensors carved from page-locked chunks (numpy buffers registered with
``cudaHostRegister``, not torch's pinned allocator, which rounds each block up to a power of two and
keeps freed blocks for itself). A chunk lives while any tensor carved from it does: once ComfyUI
has moved every layer of a chunk to the GPU and dropped the host copies, the chunk is unregistered
and freed, so the host holds no more than with pageable layers.
"""

from __future__ import annotations

import logging
import weakref

import numpy as np
import torch

log = logging.getLogger("comfyx.kernels")

# Flux's largest fp8 layer is 36 MiB (3072 x 12288), so a chunk's unused tail stays a small share of it.
CHUNK_BYTES = 256 << 20
PAGE = 4096
ALIGN = 512  # each tensor's offset in its chunk: any dtype's alignment, and the DMA engine's
HOST_REGISTER_PORTABLE = 1  # cudaHostRegisterPortable: page-locked for every GPU's context, not only the current one


class PinnedHost:
    """Host copies of CUDA tensors in page-locked memory, copied without blocking; :meth:`wait`
    before reading them on the host. Where memory cannot be page-locked (no CUDA, or the driver
    refuses), the copies are ordinary host tensors and the log says why, once."""

    def __init__(self, chunk_bytes: int = CHUNK_BYTES) -> None:
        self.chunk_bytes = chunk_bytes
        self._chunk: np.ndarray | None = None
        self._used = 0
        self._pending: set[torch.device] = set()
        self.problem: str | None = None if torch.cuda.is_available() else "CUDA is not available"

    def copy_of(self, tensor: torch.Tensor) -> torch.Tensor:
        """A host copy of ``tensor`` (same dtype and shape, contiguous)."""
        if self.problem is not None or tensor.device.type != "cuda":
            return tensor.to("cpu")
        nbytes = tensor.numel() * tensor.element_size()
        chunk = self._room_for(nbytes)
        if chunk is None:
            return tensor.to("cpu")
        start = self._used
        self._used += -(-nbytes // ALIGN) * ALIGN
        host = torch.from_numpy(chunk[start:start + nbytes]).view(tensor.dtype).view(tensor.shape)
        host.copy_(tensor, non_blocking=True)
        self._pending.add(tensor.device)
        return host

    def wait(self) -> None:
        """Wait for the copies made so far."""
        for device in self._pending:
            torch.cuda.synchronize(device)
        self._pending.clear()

    def _room_for(self, nbytes: int) -> np.ndarray | None:
        if self._chunk is None or self._used + nbytes > len(self._chunk):
            try:
                self._chunk = _registered_chunk(max(nbytes, self.chunk_bytes))
            except RuntimeError as error:
                self.problem = f"page-locking host memory failed: {error}"
                log.warning("comfyx quantize: quantized layers stay in pageable host memory: %s", self.problem)
                self._chunk = None
                return None
            self._used = 0
        return self._chunk


def _registered_chunk(nbytes: int) -> np.ndarray:
    """``nbytes`` of page-aligned host memory, page-locked until the buffer is freed."""
    backing = np.empty(nbytes + PAGE, dtype=np.uint8)
    offset = -backing.ctypes.data % PAGE
    chunk = backing[offset:offset + nbytes]
    cudart = torch.cuda.cudart()
    torch.cuda.check_error(cudart.cudaHostRegister(chunk.ctypes.data, nbytes, HOST_REGISTER_PORTABLE))
    # the views' storages keep ``backing`` alive; numpy clears its weak references before it frees
    # the memory, so the pages are unlocked first
    weakref.finalize(backing, cudart.cudaHostUnregister, chunk.ctypes.data)
    return chunk
