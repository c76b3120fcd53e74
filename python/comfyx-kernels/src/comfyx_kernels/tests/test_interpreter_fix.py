"""The CPU interpreter's float32 fma rounds once, as the GPU's does (triton_interpreter_fix)."""

from __future__ import annotations

from fractions import Fraction

import numpy as np

from comfyx_kernels.backends.triton_interpreter_fix import _fma_float32


def _rounded_once(a: np.float32, b: np.float32, c: np.float32) -> np.float32:
    exact = Fraction(float(a)) * Fraction(float(b)) + Fraction(float(c))
    guess = np.float32(float(exact))
    candidates = [np.nextafter(guess, np.float32(d)) for d in (-np.inf, np.inf)] + [guess]

    def distance(v: np.float32) -> tuple[Fraction, int]:  # nearest, ties to the even bit pattern
        return abs(Fraction(float(v)) - exact), int(v.view(np.int32)) % 2

    return min(candidates, key=distance)


def test_fma_keeps_the_products_rounding_error():
    a = np.float32(1 + 2.0**-12)
    product = np.float32(a * a)  # 1 + 2^-11 + 2^-24 rounded: the 2^-24 is lost
    assert _fma_float32(a, a, -product) == np.float32(2.0**-24)  # a * a + c in float32: 0


def test_fma_is_correctly_rounded_where_the_sum_cancels():
    rng = np.random.default_rng(0)
    a, b = (rng.standard_normal(2000).astype(np.float32) for _ in range(2))
    c = (-(a.astype(np.float64) * b) * (1 + rng.standard_normal(2000) * 1e-7)).astype(np.float32)
    got = _fma_float32(a, b, c)
    expected = np.array([_rounded_once(*abc) for abc in zip(a, b, c, strict=True)], np.float32)
    assert np.array_equal(got.view(np.int32), expected.view(np.int32))
