import pytest
import torch

import comfyx_kernels
from comfyx_kernels.backends import eager

from .helpers import FLOAT_DTYPES, assert_bit_equal, backend_params, device

# Backends fuse multiply-adds differently; one unit in the last place of the output dtype.
# float32 sums of two products may cancel, so float32 also gets an absolute tolerance.
ULP_RTOL = {torch.float32: 1e-5, torch.float16: 2**-10, torch.bfloat16: 2**-7}
ATOL = {torch.float32: 1e-6, torch.float16: 1e-5, torch.bfloat16: 1e-4}


def freqs_for(batch, seq, half_dim, layout, dtype=torch.float32):
    angles = torch.rand(batch, seq, half_dim, device=device()) * 6.28
    cos, sin = angles.cos(), angles.sin()
    rotation = torch.stack([cos, -sin, sin, cos], dim=-1).reshape(batch, seq, half_dim, 2, 2)
    freqs = rotation.unsqueeze(1 if layout == "BHLD" else 2)
    return freqs.to(dtype)


def rope_input(batch, heads, seq, dim, layout, dtype):
    shape = (batch, heads, seq, dim) if layout == "BHLD" else (batch, seq, heads, dim)
    return torch.randn(shape, device=device(), dtype=dtype)


def assert_close_to_reference(actual, x, freqs):
    expected = eager.apply_rope1(x.cpu(), freqs.cpu())
    assert actual.dtype == expected.dtype and actual.shape == expected.shape
    torch.testing.assert_close(actual.cpu(), expected, rtol=ULP_RTOL[x.dtype], atol=ATOL[x.dtype])


@pytest.mark.parametrize("backend", backend_params())
@pytest.mark.parametrize("dtype", FLOAT_DTYPES, ids=str)
@pytest.mark.parametrize("layout", ["BHLD", "BLHD"])
@pytest.mark.parametrize("dims", [(1, 3, 2, 17, 64), (2, 5, 3, 9, 20), (1, 2, 2, 33, 128)], ids=str)
def test_apply_rope_q_and_k_with_different_heads(backend, dtype, layout, dims):
    batch, heads_q, heads_k, seq, dim = dims
    xq = rope_input(batch, heads_q, seq, dim, layout, dtype)
    xk = rope_input(batch, heads_k, seq, dim, layout, dtype)
    freqs = freqs_for(1, seq, dim // 2, layout)
    with comfyx_kernels.use_backend(backend):
        q, k = comfyx_kernels.apply_rope(xq, xk, freqs)
    assert comfyx_kernels.last_backend() == backend
    assert_close_to_reference(q, xq, freqs)
    assert_close_to_reference(k, xk, freqs)


@pytest.mark.parametrize("backend", backend_params())
def test_rope_non_contiguous_packed_qkv(backend):
    # q, k, v as strided views of one fused projection, read as BHLD through a transpose.
    qkv = torch.randn(2, 11, 3, 4, 32, device=device(), dtype=torch.bfloat16)
    xq, xk = qkv[:, :, 0].transpose(1, 2), qkv[:, :, 1].transpose(1, 2)
    freqs = freqs_for(2, 11, 16, "BHLD")
    with comfyx_kernels.use_backend(backend):
        q, k = comfyx_kernels.apply_rope(xq, xk, freqs)
        one = comfyx_kernels.apply_rope1(xq, freqs)
    assert_close_to_reference(q, xq, freqs)
    assert_close_to_reference(k, xk, freqs)
    assert_bit_equal(one, q)


@pytest.mark.parametrize("backend", backend_params())
@pytest.mark.parametrize("freqs_dtype", FLOAT_DTYPES, ids=str)
def test_rope_freqs_dtypes_and_longer_freqs(backend, freqs_dtype):
    # freqs for more positions than x has are trimmed, as comfy-kitchen does.
    x = rope_input(1, 3, 10, 16, "BHLD", torch.bfloat16)
    freqs = freqs_for(1, 14, 8, "BHLD", freqs_dtype)
    if backend == "cuda" and freqs_dtype != torch.float32:
        # The CUDA kernels take float32 freqs (what ComfyUI passes); the refusal says so.
        refused = pytest.raises(comfyx_kernels.NoCapableBackendError, match="freqs_cis has dtype")
        with refused, comfyx_kernels.use_backend(backend):
            comfyx_kernels.apply_rope1(x, freqs)
        return
    with comfyx_kernels.use_backend(backend):
        out = comfyx_kernels.apply_rope1(x, freqs)
    expected = eager.apply_rope1(x.cpu(), freqs.cpu())
    torch.testing.assert_close(out.cpu(), expected, rtol=2**-6, atol=2**-8)


@pytest.mark.parametrize("backend", backend_params())
def test_in_place_variants(backend):
    xq = rope_input(1, 4, 12, 32, "BLHD", torch.float16)
    xk = rope_input(1, 2, 12, 32, "BLHD", torch.float16)
    freqs = freqs_for(1, 12, 16, "BLHD")
    with comfyx_kernels.use_backend(backend):
        expected_q, expected_k = comfyx_kernels.apply_rope(xq, xk, freqs)
        q, k = comfyx_kernels.apply_rope_(xq, xk, freqs)
        x = xq.clone()
        one = comfyx_kernels.apply_rope1_(x, freqs)
    assert q is xq and k is xk and one is x
    assert_bit_equal(xq, expected_q)
    assert_bit_equal(xk, expected_k)
    assert_close_to_reference(x, expected_q, freqs)


def test_in_place_rejects_overlapping_views():
    x = torch.randn(1, 1, 4, 8).expand(1, 3, 4, 8)
    with pytest.raises(comfyx_kernels.NoCapableBackendError, match="internal overlap"):
        comfyx_kernels.apply_rope1_(x, torch.randn(1, 1, 4, 4, 2, 2))
