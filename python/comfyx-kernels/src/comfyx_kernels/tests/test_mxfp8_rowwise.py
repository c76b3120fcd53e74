"""MXFP8 rewritten to row-scaled fp8 (mxfp8_to_fp8_rowwise) and scaled_mm_mxfp8's row-wise fp8
route (sm_89/sm_90, bf16 output, from MXFP8_DEQUANT_MIN_ROWS rows on).

The rewrite is exact for every element that stays an e4m3 normal after its shift, and off by
at most half a subnormal step (2^-10 · row scale) for the others, so the route's product is not
bit-equal to the dequantized operands' product. Its contract is a tolerance: in float32, within
ROWWISE_F32_BOUND of the exact MXFP8 product for outlier-channel activations (measured ~4e-6 at
1024x3072x3072, tools/mxfp8_rowwise_accuracy.py and NOTES-fp4.md, against MXFP8's own 3.8e-2
from the unquantized product); with the bf16 output, the bf16 bound of the other GEMM tests.
"""

import pytest
import torch

import comfyx_kernels as cx
from comfyx_kernels import blockscaled_rules
from comfyx_kernels.backends.eager_blockscaled import dequantize_mxfp8_exact, mxfp8_block_scales
from comfyx_kernels.blockscaled import E8M0_BIAS, MXFP8_BLOCK, to_swizzled

from .helpers import allow_rowwise_fp8, assert_bit_equal, device, triton_param

triton_blockscaled = pytest.importorskip("comfyx_kernels.backends.triton_blockscaled")

BF16_BOUND = 4e-3
ROWWISE_F32_BOUND = 1e-4
E4M3_MIN_NORMAL = 2.0**-6
# (rows, K): one block; rows and blocks short of whole 128 x 4 scale tiles; one row of K=16384
# (the row-scale kernel's loop over many chunks of scales).
SHAPES = [(1, 32), (33, 96), (130, 320), (1, 16384)]


def random_mxfp8(rows: int, k: int, spread: int = 24) -> tuple[torch.Tensor, torch.Tensor]:
    """Any e4m3 element but NaN and any e8m0 code from 0 (a zero scale) up, codes within
    `spread` of 127 + a per-row offset: gaps from 0 to past MXFP8_ROWWISE_MAX_SHIFT."""
    data = torch.randint(0, 256, (rows, k), dtype=torch.uint8)
    data[(data & 0x7F) == 0x7F] = 0x38  # e4m3's NaNs → 1.0
    codes = torch.randint(127 - spread, 127 + spread, (rows, k // MXFP8_BLOCK))
    codes += torch.randint(-60, 60, (rows, 1))
    codes[torch.rand(codes.shape) < 0.05] = 0
    scales = to_swizzled(codes.to(torch.uint8)).view(torch.float8_e8m0fnu)
    return data.view(torch.float8_e4m3fn).to(device()), scales.to(device())


def outlier_activation(m: int, k: int) -> torch.Tensor:
    """Gaussian with 8 channels x30: rows whose blocks sit up to 5 exponents under the largest."""
    x = torch.randn(m, k)
    x[:, torch.randperm(k)[:8]] *= 30
    return x.to(device())


def gaussian_weight(n: int, k: int) -> torch.Tensor:
    return (torch.randn(n, k) / k**0.5).to(device())


def relative_error(actual: torch.Tensor, reference: torch.Tensor) -> float:
    reference = reference.double().cpu()
    return float((actual.double().cpu() - reference).norm() / reference.norm())


def rewritten(q2: torch.Tensor, row_scale: torch.Tensor) -> torch.Tensor:
    return q2.double() * row_scale.double()[:, None]


@pytest.mark.parametrize(("rows", "k"), SHAPES)
@pytest.mark.parametrize("backend", triton_param())
def test_kernel_matches_eager(backend, rows, k):
    q, s = random_mxfp8(rows, k)
    q2, row_scale = cx.mxfp8_to_fp8_rowwise(q, s, backend=backend)
    expected_q2, expected_scale = cx.mxfp8_to_fp8_rowwise(q, s, backend="eager")
    assert_bit_equal(q2, expected_q2)
    assert_bit_equal(row_scale, expected_scale)


@pytest.mark.parametrize("backend", triton_param())
def test_kernel_matches_eager_on_quantized_activations(backend):
    q, s = cx.quantize_mxfp8(outlier_activation(130, 320))
    for actual, expected in zip(
        cx.mxfp8_to_fp8_rowwise(q, s, backend=backend),
        cx.mxfp8_to_fp8_rowwise(q, s, backend="eager"),
        strict=True,
    ):
        assert_bit_equal(actual, expected)


def test_row_scale_is_the_rows_largest_block_scale():
    q, s = random_mxfp8(130, 320)
    _, row_scale = cx.mxfp8_to_fp8_rowwise(q, s, backend="eager")
    expected = mxfp8_block_scales(s, 130, 320).amax(dim=1)
    assert torch.equal(row_scale.cpu(), expected.cpu())


@pytest.mark.parametrize("backend", ["eager", *triton_param()])
def test_normal_elements_are_exact_after_the_shift_back(backend):
    """An element whose shifted value stays ≥ 2^-6 keeps all its bits: shifted back by the gap
    it is the same e4m3; the others are within half a subnormal step (2^-10) of the exact
    shifted value, and both kinds occur here."""
    rows, k = 130, 320
    q, s = random_mxfp8(rows, k, spread=4)
    q2, row_scale = cx.mxfp8_to_fp8_rowwise(q, s, backend=backend)
    block_scale = mxfp8_block_scales(s, rows, k).cpu().repeat_interleave(MXFP8_BLOCK, dim=1)
    gap = block_scale.double() / row_scale.double().cpu()[:, None]  # 2^(s - S), or 0
    shifted = q.double().cpu() * gap
    normal = (shifted.abs() >= E4M3_MIN_NORMAL) & (gap > 0)
    back = (q2.double().cpu() / gap).to(torch.float8_e4m3fn)
    assert_bit_equal(back[normal], q.cpu()[normal])
    small = ~normal & (gap > 0)
    assert normal.sum() > rows * k / 4 and small.sum() > rows * k / 20
    error = (q2.double().cpu() - shifted)[small].abs()
    assert (error <= 2.0**-10).all()
    assert (error > 0).any()  # some elements do lose bits: the bound above is what is tested


def test_zero_scale_blocks_and_zero_rows():
    q = torch.ones(3, 64, dtype=torch.float8_e4m3fn, device=device())
    codes = torch.tensor([[0, 130], [0, 0], [127, 127]], dtype=torch.uint8)
    s = to_swizzled(codes).view(torch.float8_e8m0fnu).to(device())
    q2, row_scale = cx.mxfp8_to_fp8_rowwise(q, s, backend="eager")
    assert row_scale.tolist() == [2.0 ** (130 - E8M0_BIAS), 0.0, 1.0]
    assert (q2[0, :32].float() == 0).all() and (q2[0, 32:].float() == 1).all()
    assert (q2[1].float() == 0).all() and (q2[2].float() == 1).all()


@pytest.fixture
def rowwise_anywhere(monkeypatch):
    allow_rowwise_fp8(monkeypatch)


def test_rowwise_product_in_float32_is_near_the_exact_mx_product():
    """The rewritten operands' product (float32, as the GEMM accumulates) against the exact
    MXFP8 product, for activations with outlier channels: within ROWWISE_F32_BOUND, while
    the rewrite did lose bits in them."""
    m, k, n = 96, 1024, 80
    qa, sa = cx.quantize_mxfp8(outlier_activation(m, k))
    qb, sb = cx.quantize_mxfp8(gaussian_weight(n, k))
    a2, ra = cx.mxfp8_to_fp8_rowwise(qa, sa, backend="eager")
    b2, rb = cx.mxfp8_to_fp8_rowwise(qb, sb, backend="eager")
    exact_a = dequantize_mxfp8_exact(qa, sa)
    assert (rewritten(a2, ra) != exact_a).sum() > 0
    emulated = (a2.float() * ra[:, None]) @ (b2.float() * rb[:, None]).T
    exact = exact_a @ dequantize_mxfp8_exact(qb, sb).T
    assert relative_error(emulated, exact) < ROWWISE_F32_BOUND


@pytest.mark.parametrize("backend", triton_param())
def test_rowwise_route_is_scaled_mm_of_the_rewritten_operands(backend, rowwise_anywhere):
    m, k, n = triton_blockscaled.MXFP8_DEQUANT_MIN_ROWS + 1, 1024, 80
    qa, sa = cx.quantize_mxfp8(outlier_activation(m, k))
    qb, sb = cx.quantize_mxfp8(gaussian_weight(n, k))
    bias = torch.randn(n, device=device())
    route, _ = triton_blockscaled.mxfp8_gemm_route(qa.device, m, k, n, torch.bfloat16)
    assert route == "rowwise-fp8"
    with cx.backend_trace() as trace:
        out = cx.scaled_mm_mxfp8(qa, qb, sa, sb, bias, torch.bfloat16, backend=backend)
    assert trace == [("scaled_mm_mxfp8", "triton")]
    a2, ra = cx.mxfp8_to_fp8_rowwise(qa, sa, backend="eager")
    b2, rb = cx.mxfp8_to_fp8_rowwise(qb, sb, backend="eager")
    expected = torch._scaled_mm(
        a2, b2.t(), scale_a=ra[:, None], scale_b=rb[None, :], bias=bias.to(torch.bfloat16),
        out_dtype=torch.bfloat16,
    )  # fmt: skip
    assert_bit_equal(out, expected)
    exact = dequantize_mxfp8_exact(qa, sa) @ dequantize_mxfp8_exact(qb, sb).T + bias.double()
    assert relative_error(out, exact) < BF16_BOUND


@pytest.mark.parametrize(
    ("m", "n", "out_dtype", "route"),
    [
        (64, 80, torch.bfloat16, "rowwise-fp8"),
        (63, 80, torch.bfloat16, "kernel"),
        (64, 70, torch.bfloat16, "dequant-bf16"),  # N % 16: not for the row-wise GEMM
        (64, 80, torch.float32, "kernel"),
    ],
)
def test_route_by_rows_width_and_output(m, n, out_dtype, route, monkeypatch):
    """On an sm_90 device (a stand-in capability, whatever runs the test)."""
    from comfyx_kernels import constraints

    monkeypatch.setitem(constraints._capabilities, 0, (9, 0))
    taken, reason = triton_blockscaled.mxfp8_gemm_route(
        torch.device("cuda", 0), m, 96, n, out_dtype
    )
    assert taken == route, reason


@pytest.mark.parametrize(
    ("capability", "ok"), [((8, 9), True), ((9, 0), True), ((8, 0), False), ((10, 0), False)]
)
def test_rowwise_rule(capability, ok, monkeypatch):
    from comfyx_kernels import constraints

    monkeypatch.setitem(constraints._capabilities, 0, capability)
    cuda = torch.device("cuda", 0)
    problem = blockscaled_rules.rowwise_fp8_problem
    assert (problem(cuda, torch.bfloat16, 64, 32) is None) is ok
    if ok:
        assert "bfloat16 only" in problem(cuda, torch.float16, 64)
        assert "divisible by 16" in problem(cuda, torch.bfloat16, 64, 70)
    assert "CUDA" in problem(torch.device("cpu"), torch.bfloat16, 64)
