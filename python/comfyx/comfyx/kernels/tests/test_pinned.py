"""Page-locked host copies of quantized layers (:mod:`comfyx.kernels.pinned`).

Without CUDA the copies are ordinary host tensors; the page-locked path runs on the GPU machine
(``tools/gpu-bench.sh`` runs this file there before the benchmark).
"""

from __future__ import annotations

import gc
import weakref

import pytest
import torch
from comfyx.kernels.pinned import ALIGN, PinnedHost

CUDA = torch.cuda.is_available()
needs_cuda = pytest.mark.skipif(not CUDA, reason="page-locking needs CUDA")


def test_without_cuda_the_copies_are_ordinary_host_tensors() -> None:
    host = PinnedHost()
    source = torch.randn(3, 5)
    copy = host.copy_of(source)
    host.wait()
    assert torch.equal(copy, source)
    if not CUDA:
        assert host.problem == "CUDA is not available"
        assert not copy.is_pinned()


@needs_cuda
@pytest.mark.parametrize("dtype", [torch.float8_e4m3fn, torch.float32, torch.uint8, torch.bfloat16])
def test_copies_are_page_locked_and_equal_to_the_source(dtype: torch.dtype) -> None:
    host = PinnedHost(chunk_bytes=1 << 20)
    sources = [torch.randn(shape, device="cuda").to(dtype) for shape in [(), (7,), (33, 65), (512, 1024)]]
    copies = [host.copy_of(source) for source in sources]
    host.wait()
    assert host.problem is None
    for source, copy in zip(sources, copies, strict=True):
        assert copy.device.type == "cpu" and copy.is_pinned()
        assert copy.shape == source.shape and copy.dtype == dtype and copy.is_contiguous()
        assert torch.equal(copy.view(torch.uint8), source.cpu().view(torch.uint8))
        assert copy.data_ptr() % ALIGN == 0


@needs_cuda
def test_a_chunk_is_freed_once_every_copy_carved_from_it_is() -> None:
    host = PinnedHost(chunk_bytes=1 << 20)
    small = [host.copy_of(torch.ones(1000, device="cuda")) for _ in range(3)]
    chunk = weakref.ref(host._chunk.base)
    big = host.copy_of(torch.ones(1 << 20, device="cuda"))  # 4 MiB: a chunk of its own
    big_chunk = weakref.ref(host._chunk.base)
    host.wait()
    assert chunk() is not big_chunk()
    del host
    as_parameter = torch.nn.Parameter(small.pop(), requires_grad=False)  # how a layer holds it
    small.clear()
    gc.collect()
    assert chunk() is not None  # the parameter still reads it
    del as_parameter
    gc.collect()
    assert chunk() is None and big_chunk() is not None
    assert big.is_pinned() and torch.equal(big, torch.ones(1 << 20))
    del big
    gc.collect()
    assert big_chunk() is None


@needs_cuda
@pytest.mark.parametrize("fmt", ["fp8", "nvfp4", "mxfp8"])
def test_a_layer_quantized_on_the_gpu_comes_back_page_locked_with_the_same_bytes(fmt: str) -> None:
    pytest.importorskip("comfyx_kernels")
    comfy_ops = pytest.importorskip("comfy.ops")  # ComfyUI's tree on PYTHONPATH
    from comfyx.kernels import LayerOptions
    from comfyx.kernels.ops import operations_for

    linear = operations_for(comfy_ops.manual_cast, LayerOptions()).Linear
    weight = torch.randn(256, 512, dtype=torch.bfloat16)
    layers = []
    for host in (None, PinnedHost()):
        layer = linear(512, 256, bias=False, dtype=torch.bfloat16)
        layer.weight = torch.nn.Parameter(weight.clone(), requires_grad=False)
        layer.quantize_weight_(fmt, device=torch.device("cuda"), host=host)
        if host is not None:
            host.wait()
        layers.append(dict(layer.named_parameters()))
    plain, pinned = layers
    assert plain.keys() == pinned.keys() and "weight" in pinned
    for name, tensor in pinned.items():
        assert tensor.device.type == "cpu" and tensor.is_pinned() and not plain[name].is_pinned(), name
        assert torch.equal(tensor.reshape(-1).view(torch.uint8), plain[name].reshape(-1).view(torch.uint8)), name
