"""Shape buckets: padding on the host keeps the requested region and crops back exactly."""

import pytest

torch = pytest.importorskip("torch")

from comfyx.backends.tpu import padding  # noqa: E402 - after the torch skip


@pytest.mark.parametrize(("size", "multiple", "expected"), [(64, 8, 64), (65, 8, 72), (1, 8, 8), (97, 8, 104)])
def test_bucket(size, multiple, expected):
    assert padding.bucket(size, multiple) == expected


def test_noise_keeps_the_requested_region_and_is_seeded():
    noise = torch.randn(2, 4, 9, 13)
    grown = padding.pad_noise(noise, 16, 16, seed=3)
    assert grown.shape == (2, 4, 16, 16)
    assert torch.equal(padding.crop(grown, 9, 13), noise)
    assert torch.equal(grown, padding.pad_noise(noise, 16, 16, seed=3))
    assert not torch.equal(grown, padding.pad_noise(noise, 16, 16, seed=4))
    assert grown[..., 9:, :].std() > 0.5  # real noise in the padding, not zeros


def test_replicate_padding_repeats_the_edge():
    latent = torch.arange(6, dtype=torch.float16).reshape(1, 1, 2, 3)
    grown = padding.pad_replicate(latent, 4, 5)
    assert grown.dtype == torch.float16 and grown.shape == (1, 1, 4, 5)
    assert torch.equal(padding.crop(grown, 2, 3), latent)
    assert torch.equal(grown[0, 0, 3], torch.tensor([3, 4, 5, 5, 5], dtype=torch.float16))


def test_no_padding_returns_the_same_tensor():
    latent = torch.zeros(1, 4, 8, 8)
    assert padding.pad_replicate(latent, 8, 8) is latent
    assert padding.pad_noise(latent, 8, 8, seed=0) is latent
