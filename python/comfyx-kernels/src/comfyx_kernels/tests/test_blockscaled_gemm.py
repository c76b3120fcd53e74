"""NVFP4 / MXFP8 GEMMs and linear layers against float64 products of the dequantized operands.

Tolerances: the kernels multiply the exact dequantized values (e2m1 · block scale is exact in
bf16; fp8 · 2^k is exact) and accumulate in float32, so their error is the output's rounding:
2^-8 relative for bfloat16 outputs (bounded by 4e-3 of the output norm here), accumulation
order for float32 outputs (1e-5). The MXFP8 GEMM's "promote" variant multiplies each 32-element
block on fp8 tensor cores, which on Hopper sum a block's products with about 14 bits of precision
before the float32 accumulator takes them (DeepSeek-V3's H800 finding): measured 4.5e-5 relative
for float32 outputs on an H100, so its float32 bound is 2e-4. On sm_89/sm_90 scaled_mm_mxfp8 with
a bf16 output from MXFP8_DEQUANT_MIN_ROWS rows on multiplies row-scaled fp8 rewrites of its operands
instead, not bit-equal to the dequantized product but within the same bf16 bound
(test_mxfp8_rowwise.py).
"""

import pytest
import torch
import torch.nn.functional as F

import comfyx_kernels as cx
from comfyx_kernels import blockscaled_linear as gemm_linear
from comfyx_kernels import quantized_tensor
from comfyx_kernels.backends.eager_blockscaled import (
    dequantize_mxfp8_exact,
    dequantize_nvfp4_exact,
)
from comfyx_kernels.backends.triton_blockscaled import MXFP8_DEQUANT_MIN_ROWS
from comfyx_kernels.blockscaled import W4A8_WEIGHT_DIVISOR, nvfp4_tensor_scale, to_swizzled
from comfyx_kernels.blockscaled_linear import DEQUANT_MIN_ROWS, LinearPath
from comfyx_kernels.registry import dispatch

from .helpers import allow_rowwise_fp8, assert_bit_equal, device, triton_param

triton = pytest.importorskip("triton", reason="the GEMM variants are Triton configs")
gemm = pytest.importorskip("comfyx_kernels.backends.triton_gemm_kernels")
triton_blockscaled = pytest.importorskip("comfyx_kernels.backends.triton_blockscaled")

BF16_BOUND, F32_BOUND = 4e-3, 1e-5
FP8_MMA_F32_BOUND = 2e-4
# (M, K, N): tiny M (one token), M not a multiple of any tile, K with a partial last tile.
GEMM_SHAPES = [(1, 64, 48), (33, 96, 70), (130, 160, 64)]
COMPILE_BACKENDS = ["aot_eager"] + (["inductor"] if torch.cuda.is_available() else [])


def _force_flag(monkeypatch, kernel, lists: tuple[str, ...], flag: str, value: bool) -> None:
    """`kernel` runs one config, with `flag` = value (so both code paths get tested, without
    autotuning every test shape on a GPU)."""
    for name in lists:
        c = getattr(gemm, name)[0]
        config = triton.Config(
            {**c.kwargs, flag: value}, num_warps=c.num_warps, num_stages=c.num_stages
        )
        monkeypatch.setattr(gemm, name, [config])
    monkeypatch.setattr(kernel, "cache", {})  # the autotuner's choice per shape, made anew


@pytest.fixture(params=[True, False], ids=["swap", "direct"])
def nvfp4_variant(request, monkeypatch):
    lists = ("_SMALL_M", "_LARGE_M", "INTERPRETED_NVFP4")
    _force_flag(monkeypatch, gemm.nvfp4_weight_gemm_kernel, lists, "SWAP", request.param)


@pytest.fixture(params=[True, False], ids=["promote", "bf16"])
def mxfp8_variant(request, monkeypatch):
    _force_flag(
        monkeypatch,
        gemm.mxfp8_gemm_kernel,
        ("_MXFP8", "INTERPRETED_MXFP8"),
        "PROMOTE",
        request.param,
    )


def relative_error(actual: torch.Tensor, reference: torch.Tensor) -> float:
    reference = reference.double().cpu()
    return float((actual.double().cpu() - reference).norm() / reference.norm())


def nvfp4_weight(n: int, k: int, hi_first: bool = True):
    w = torch.randn(n, k, device=device()) / k**0.5
    scale = nvfp4_tensor_scale(w)
    q, s = cx.quantize_nvfp4(w, scale, hi_first=hi_first)
    return q, s, scale


@pytest.mark.parametrize("hi_first", [True, False])
@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16], ids=str)
@pytest.mark.parametrize(("m", "k", "n"), GEMM_SHAPES)
@pytest.mark.parametrize("backend", triton_param())
def test_nvfp4_weight_gemm_matches_dequantized_product(
    backend, m, k, n, dtype, hi_first, nvfp4_variant
):
    q, s, scale = nvfp4_weight(n, k, hi_first)
    x = torch.randn(m, k, device=device(), dtype=dtype)
    bias = torch.randn(n, device=device(), dtype=dtype)
    args = {"weight": q, "weight_scale": s, "weight_scale_2": scale, "bias": bias}
    out = dispatch("linear_nvfp4_weight", backend, x=x, hi_first=hi_first, **args)
    assert out.shape == (m, n) and out.dtype == dtype
    exact = x.double() @ dequantize_nvfp4_exact(q, scale, s, hi_first).T + bias.double()
    assert relative_error(out, exact) < BF16_BOUND
    # The wrong nibble order must show: the test can fail.
    swapped = dispatch("linear_nvfp4_weight", backend, x=x, hi_first=not hi_first, **args)
    assert relative_error(swapped, exact) > 0.1


@pytest.mark.parametrize("out_dtype", [torch.float32, torch.bfloat16], ids=str)
@pytest.mark.parametrize(("m", "k", "n"), GEMM_SHAPES)
@pytest.mark.parametrize("backend", triton_param())
def test_mxfp8_gemm_matches_dequantized_product(
    backend, m, k, n, out_dtype, mxfp8_variant, request
):
    a = torch.randn(m, k, device=device())
    a[:, :32] *= 64  # block scales that differ along K
    b = torch.randn(n, k, device=device())
    qa, sa = cx.quantize_mxfp8(a)
    qb, sb = cx.quantize_mxfp8(b)
    bias = torch.randn(n, device=device())
    out = cx.scaled_mm_mxfp8(qa, qb, sa, sb, bias, out_dtype, backend=backend)
    exact = dequantize_mxfp8_exact(qa, sa) @ dequantize_mxfp8_exact(qb, sb).T + bias.double()
    promoted = request.node.callspec.params["mxfp8_variant"]
    f32_bound = FP8_MMA_F32_BOUND if promoted and str(device()).startswith("cuda") else F32_BOUND
    bound = f32_bound if out_dtype == torch.float32 else BF16_BOUND
    assert relative_error(out, exact) < bound


def test_eager_scaled_mm_nvfp4_is_the_dequantized_product():
    qa, sa, ta = nvfp4_weight(20, 64)
    qb, sb, tb = nvfp4_weight(24, 64)
    out = cx.scaled_mm_nvfp4(qa, qb, ta, tb, sa, sb, out_dtype=torch.float32, backend="eager")
    exact = dequantize_nvfp4_exact(qa, ta, sa, True) @ dequantize_nvfp4_exact(qb, tb, sb, True).T
    assert relative_error(out, exact) < F32_BOUND


@pytest.mark.skipif(
    not torch.cuda.is_available() or torch.cuda.get_device_capability() < (10, 0),
    reason="native block-scaled GEMMs need sm_100+",
)
def test_native_gemms_match_eager():
    qa, sa, ta = nvfp4_weight(256, 512)
    qb, sb, tb = nvfp4_weight(384, 512)
    native = cx.scaled_mm_nvfp4(qa, qb, ta, tb, sa, sb, backend="cuda")
    reference = cx.scaled_mm_nvfp4(qa, qb, ta, tb, sa, sb, backend="eager")
    assert relative_error(native, reference) < BF16_BOUND
    a, b = cx.quantize_mxfp8(torch.randn(256, 512, device="cuda"))
    c, d = cx.quantize_mxfp8(torch.randn(384, 512, device="cuda"))
    native = cx.scaled_mm_mxfp8(a, c, b, d, backend="cuda")
    assert relative_error(native, cx.scaled_mm_mxfp8(a, c, b, d, backend="eager")) < BF16_BOUND


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float32], ids=str)
def test_nvfp4_linear_pads_k_drops_padded_rows_and_names_its_path(dtype):
    # A 50 x 40 layer: stored as 64 x 48 (rows and K padded to 16).
    w = torch.randn(50, 40, device=device())
    q, s = cx.quantize_nvfp4(w, nvfp4_tensor_scale(w), pad_16x=True)
    scale = nvfp4_tensor_scale(w)
    x = torch.randn(2, 3, 40, device=device(), dtype=dtype)
    bias = torch.randn(50, device=device(), dtype=dtype)
    out = cx.nvfp4_linear(x, q, s, scale, bias, out_features=50)
    assert out.shape == (2, 3, 50) and out.dtype == dtype
    w_exact = dequantize_nvfp4_exact(q, scale, s, True)[:50, :40]
    exact = x.double() @ w_exact.T + bias.double()
    assert relative_error(out, exact) < BF16_BOUND
    path = cx.nvfp4_linear_path(x)
    if x.device.type == "cpu":
        assert path.name == "fallback" and "activation on cpu" in path.reason
    with pytest.raises(ValueError, match="only 48"):
        cx.nvfp4_linear(torch.randn(2, 64, device=device(), dtype=dtype), q, s, scale)


def test_mxfp8_linear_matches_dequantized_weight():
    w = torch.randn(70, 96, device=device())
    q, s = cx.quantize_mxfp8(w, pad_32x=True)
    x = torch.randn(5, 96, device=device(), dtype=torch.bfloat16)
    out = cx.mxfp8_linear(x, q, s, out_features=70)
    assert out.shape == (5, 70)
    exact = x.double() @ dequantize_mxfp8_exact(q, s)[:70].T
    # On GPUs the activation is quantized to MXFP8 too (a few % error); the fallback is exact.
    bound = BF16_BOUND if cx.mxfp8_linear_path(x).name == "fallback" else 0.05
    assert relative_error(out, exact) < bound


@pytest.mark.parametrize("static_scale", [False, True], ids=["dynamic", "static"])
@pytest.mark.parametrize(("m", "k", "n"), GEMM_SHAPES)
@pytest.mark.parametrize("backend", triton_param())
def test_w4a8_gemm_matches_its_reference(backend, m, k, n, static_scale, nvfp4_variant):
    q, s, scale = nvfp4_weight(n, k)
    x = torch.randn(m, k, device=device(), dtype=torch.bfloat16)
    bias = torch.randn(n, device=device(), dtype=torch.bfloat16)
    input_scale = (x.abs().amax().float() / 448) if static_scale else None
    args = {"x": x, "weight": q, "weight_scale": s, "weight_scale_2": scale, "bias": bias}
    out = dispatch("linear_nvfp4_weight_fp8", backend, **args, input_scale=input_scale)
    reference = dispatch("linear_nvfp4_weight_fp8", "eager", **args, input_scale=input_scale)
    assert relative_error(out, reference) < BF16_BOUND
    # Against the exact W4A16 product: the fp8 roundings of activation and weight, a few %.
    exact = x.double() @ dequantize_nvfp4_exact(q, scale, s, True).T + bias.double()
    assert 1e-3 < relative_error(out, exact) < 0.05


def test_nvfp4_activation_choice():
    assert gemm_linear.NVFP4_ACTIVATION == "bf16"
    with pytest.raises(ValueError, match="activation must be bf16 or fp8"):
        cx.nvfp4_linear_path(torch.randn(2, 16), "fp4")


# ---- the sm_89/sm_90 dequantize paths: the weight expanded for one call, cuBLAS multiplies ----

ON_GPU_KERNELS = LinearPath("triton", "sm_90 (no FP4/MX tensor cores before sm_100)")
# Rows either side of the threshold; 3-D activations count all leading dimensions as rows.
ROWS = [1, DEQUANT_MIN_ROWS - 1, DEQUANT_MIN_ROWS, 4096]


@pytest.fixture
def sm90_paths(monkeypatch):
    """nvfp4_linear chooses as on an sm_90 GPU whatever the device (the Triton kernels run on
    the CPU under TRITON_INTERPRET=1): only the rows and the activation decide."""
    monkeypatch.setattr(gemm_linear, "_device_path", lambda x, dtypes: ON_GPU_KERNELS)


@pytest.fixture
def rowwise_anywhere(monkeypatch):
    allow_rowwise_fp8(monkeypatch)


@pytest.fixture
def scaled_mm_anywhere(monkeypatch):
    """torch._scaled_mm also on the CPU (torch 2.14's takes e4m3 operands there), where
    fp8_linear would dequantize instead: the dequant-fp8 path's own call gets tested."""
    if device() == "cpu":
        monkeypatch.setattr(quantized_tensor, "_gemm_problem", lambda *args: None)


@pytest.mark.parametrize("rows", ROWS)
@pytest.mark.parametrize("activation", [None, "bf16", "fp8"])
def test_nvfp4_path_by_rows_and_activation(rows, activation, sm90_paths):
    x = torch.empty(rows, 64, dtype=torch.bfloat16)
    path = cx.nvfp4_linear_path(x, activation)
    dequant = rows >= DEQUANT_MIN_ROWS
    expected = {
        (False, False): "triton",
        (False, True): "triton-fp8",
        (True, False): "dequant-bf16",
        (True, True): "dequant-fp8",
    }[dequant, activation == "fp8"]
    assert path.name == expected
    assert f"M {'>=' if dequant else '<'} {DEQUANT_MIN_ROWS} rows" in path.reason
    # 3-D: rows are batch x tokens.
    assert cx.nvfp4_linear_path(x.reshape(1, rows, 64), activation) == path


def test_nvfp4_path_threshold_is_read_per_call(sm90_paths, monkeypatch):
    x = torch.empty(2, 8, 64, dtype=torch.float16)
    assert cx.nvfp4_linear_path(x).name == "triton"
    monkeypatch.setattr(gemm_linear, "DEQUANT_MIN_ROWS", 16)
    assert cx.nvfp4_linear_path(x).name == "dequant-bf16"
    # Off the Triton device path (CPU fallback, float32, Blackwell) rows do not matter.
    monkeypatch.undo()
    if device() == "cpu":
        assert cx.nvfp4_linear_path(torch.empty(4096, 64)).name == "fallback"


def random_nvfp4(rows: int, k: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Any packed e2m1 codes and any finite block scale (subnormals, both signs): every case of
    the fp8 rounding, not only what quantize_nvfp4 produces."""
    packed = torch.randint(0, 256, (rows, k // 2), dtype=torch.uint8)
    codes = torch.randint(0, 256, (rows, k // 16), dtype=torch.uint8)
    codes[(codes & 0x7F) == 0x7F] = 0x38  # e4m3's NaNs → 1.0
    scales = to_swizzled(codes.view(torch.float8_e4m3fn))
    return packed.to(device()), scales.to(device())


@pytest.mark.parametrize("hi_first", [True, False])
@pytest.mark.parametrize(("rows", "k"), [(1, 16), (33, 96), (130, 320)])
@pytest.mark.parametrize("backend", triton_param())
def test_nvfp4_to_fp8_kernel_matches_eager(backend, rows, k, hi_first):
    q, s = random_nvfp4(rows, k)
    out = cx.nvfp4_to_fp8(q, s, hi_first, backend=backend)
    assert_bit_equal(out, cx.nvfp4_to_fp8(q, s, hi_first, backend="eager"))


def test_eager_nvfp4_to_fp8_rounds_to_nearest_e4m3():
    q, s = random_nvfp4(128, 256)
    w8 = cx.nvfp4_to_fp8(q, s, backend="eager").double()
    exact = dequantize_nvfp4_exact(q, torch.ones((), device=q.device), s, True) / 8
    # Exact values and rounded ones both occur, each within half an e4m3 step (subnormals:
    # steps of 2^-9), and the swapped nibble order shows.
    rounded = w8 != exact
    assert rounded.any() and (~rounded & (exact != 0)).any()
    assert (w8 - exact).abs().le(exact.abs() / 16 + 2.0**-10).all()
    assert not torch.equal(cx.nvfp4_to_fp8(q, s, False, backend="eager").double(), w8)


@pytest.mark.parametrize("backend", triton_param())
def test_nvfp4_to_fp8_on_a_row_slice(backend):
    """nvfp4_linear passes weight[:out_features] with the scales of all padded rows."""
    q, s = random_nvfp4(64, 48)
    sliced = cx.nvfp4_to_fp8(q[:50], s, backend=backend)
    assert_bit_equal(sliced, cx.nvfp4_to_fp8(q, s, backend="eager")[:50])


@pytest.mark.parametrize("hi_first", [True, False])
@pytest.mark.parametrize("backend", triton_param())
def test_fp8_weight_is_the_w4a8_gemm_weight(backend, hi_first, nvfp4_variant):
    """The fused W4A8 GEMM with the identity as activation (scale 1/8, per-tensor scale 1)
    writes its in-register e4m3 weight, transposed, to a float32 output: the transient fp8
    copy must be that weight bit for bit."""
    n, k = 70, 96
    q, s = random_nvfp4(n, k)
    eye = torch.eye(k, device=device()).to(torch.float8_e4m3fn)
    one = torch.ones((), device=device())
    out = triton_blockscaled._nvfp4_weight_gemm(
        eye, one / W4A8_WEIGHT_DIVISOR, q, s, one, None, hi_first, torch.float32
    )
    w8 = cx.nvfp4_to_fp8(q, s, hi_first, backend=backend).float()
    assert torch.equal(out.T, w8)  # by value: a sum of zeros is +0 where the weight is -0
    assert w8.count_nonzero() > w8.numel() / 2


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16], ids=str)
@pytest.mark.parametrize("backend", triton_param())
def test_dequant_bf16_path_is_f_linear_of_the_dequantized_weight(backend, dtype, sm90_paths):
    n, k = 70, 96  # 70 of 80 stored rows
    w = torch.randn(n, k, device=device())
    scale = nvfp4_tensor_scale(w)
    q, s = cx.quantize_nvfp4(w, scale, pad_16x=True)
    x = torch.randn(2, DEQUANT_MIN_ROWS, k, device=device(), dtype=dtype)
    bias = torch.randn(n, device=device(), dtype=dtype)
    with cx.backend_trace() as trace:
        out = cx.nvfp4_linear(x, q, s, scale, bias, out_features=n)
    assert trace == [("dequantize_nvfp4", "triton")]
    w_eager = cx.dequantize_nvfp4(q[:n], scale, s, dtype, backend="eager")
    assert_bit_equal(out, F.linear(x, w_eager, bias))
    exact = x.double() @ dequantize_nvfp4_exact(q, scale, s, True)[:n].T + bias.double()
    # F.linear's own rounding to the output dtype: bf16's 2.3e-3 to 4.4e-3 against the exact
    # product over seeds 0-5 on the CPU (over BF16_BOUND once in CI), fp16's 2e-4 to 5e-4; its
    # eps is twice the unit roundoff
    assert relative_error(out, exact) < torch.finfo(dtype).eps


@pytest.mark.parametrize("static_scale", [False, True], ids=["dynamic", "static"])
@pytest.mark.parametrize("backend", triton_param())
def test_dequant_fp8_path_matches_the_w4a8_reference(
    backend, static_scale, sm90_paths, scaled_mm_anywhere, monkeypatch
):
    if device() == "cuda" and torch.cuda.get_device_capability() < (8, 9):
        pytest.skip("torch._scaled_mm needs sm_89+")
    calls = []
    scaled_mm = torch._scaled_mm
    monkeypatch.setattr(
        torch, "_scaled_mm", lambda *a, **kw: calls.append(1) or scaled_mm(*a, **kw)
    )
    n, k = 80, 96
    q, s, scale = nvfp4_weight(n, k)
    x = torch.randn(DEQUANT_MIN_ROWS + 3, k, device=device(), dtype=torch.bfloat16)
    bias = torch.randn(n, device=device(), dtype=torch.bfloat16)
    input_scale = (x.abs().amax().float() / 448) if static_scale else None
    assert cx.nvfp4_linear_path(x, "fp8").name == "dequant-fp8"
    with cx.backend_trace() as trace:
        out = cx.nvfp4_linear(x, q, s, scale, bias, input_scale=input_scale, activation="fp8")
    assert ("nvfp4_to_fp8", "triton") in trace and calls == [1]
    args = {"x": x, "weight": q, "weight_scale": s, "weight_scale_2": scale, "bias": bias}
    reference = dispatch("linear_nvfp4_weight_fp8", "eager", **args, input_scale=input_scale)
    assert relative_error(out, reference) < BF16_BOUND
    exact = x.double() @ dequantize_nvfp4_exact(q, scale, s, True).T + bias.double()
    assert 1e-3 < relative_error(out, exact) < 0.05


@pytest.mark.parametrize("activation", ["bf16", "fp8"])
@pytest.mark.parametrize("compile_backend", COMPILE_BACKENDS)
@pytest.mark.parametrize("backend", triton_param())
def test_dequant_paths_under_torch_compile(
    backend, compile_backend, activation, sm90_paths, scaled_mm_anywhere
):
    if device() == "cuda" and torch.cuda.get_device_capability() < (8, 9):
        pytest.skip("torch._scaled_mm needs sm_89+")
    q, s, scale = nvfp4_weight(64, 96)
    x = torch.randn(DEQUANT_MIN_ROWS, 96, device=device(), dtype=torch.bfloat16)

    def forward(x):
        return cx.nvfp4_linear(x, q, s, scale, activation=activation)

    torch._dynamo.reset()
    compiled = torch.compile(forward, backend=compile_backend, fullgraph=True)
    out, eager = compiled(x), forward(x)
    if compile_backend == "aot_eager":  # the same kernels and calls as eager
        assert_bit_equal(out, eager)
    assert relative_error(out, eager) < BF16_BOUND


@pytest.mark.parametrize("rows", [16, DEQUANT_MIN_ROWS])
@pytest.mark.parametrize("activation", ["bf16", "fp8"])
def test_the_real_path_choice_traces_whole_under_torch_compile(rows, activation):
    """Without sm90_paths: the device and backend checks themselves must not break the graph (each
    break cost a Flux model 59 more Dynamo frames and 7 recompiles, H100)."""
    if device() != "cuda":
        pytest.skip("the path choice traced here is the CUDA one")
    q, s, scale = nvfp4_weight(64, 96)
    x = torch.randn(rows, 96, device="cuda", dtype=torch.bfloat16)

    def forward(x):
        return cx.nvfp4_linear(x, q, s, scale, activation=activation)

    torch._dynamo.reset()
    out = torch.compile(forward, backend="aot_eager", fullgraph=True)(x)
    assert relative_error(out, forward(x)) < BF16_BOUND


@pytest.mark.parametrize("rows", ROWS)
@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16, torch.float32], ids=str)
def test_mxfp8_path_by_rows_and_dtype(rows, dtype, sm90_paths, rowwise_anywhere):
    x = torch.empty(rows, 64, dtype=dtype, device=device())  # the real rule decides on a GPU
    path = cx.mxfp8_linear_path(x)
    expected = "triton"  # below the row count, and float32 at any: the MX GEMM
    if rows >= DEQUANT_MIN_ROWS and dtype != torch.float32:
        # the row-wise fp8 GEMM writes bf16 only
        expected = "rowwise-fp8" if dtype == torch.bfloat16 else "dequant-bf16"
    assert path.name == expected, path
    # a width the row-wise GEMM cannot take (N % 16) dequantizes the weight
    narrow = cx.mxfp8_linear_path(x, out_features=70)
    assert narrow.name == ("dequant-bf16" if expected == "rowwise-fp8" else expected), narrow


@pytest.mark.parametrize("backend", triton_param())
def test_mxfp8_dequant_path_is_f_linear_of_the_dequantized_weight(backend, sm90_paths):
    n, k = 70, 96
    q, s = cx.quantize_mxfp8(torch.randn(n, k, device=device()), pad_32x=True)
    x = torch.randn(DEQUANT_MIN_ROWS + 1, k, device=device(), dtype=torch.bfloat16)
    bias = torch.randn(n, device=device(), dtype=torch.bfloat16)
    assert cx.mxfp8_linear_path(x, n).name == "dequant-bf16"  # N % 16: no row-wise fp8 GEMM
    with cx.backend_trace() as trace:
        out = cx.mxfp8_linear(x, q, s, bias, out_features=n)
    assert trace == [("dequantize_mxfp8", "triton")]
    w_eager = cx.dequantize_mxfp8(q[:n], s, torch.bfloat16, backend="eager")
    assert_bit_equal(out, F.linear(x, w_eager, bias))


@pytest.mark.parametrize("backend", triton_param())
def test_mxfp8_rowwise_path_is_the_rowwise_gemm_of_the_quantized_activation(
    backend, sm90_paths, rowwise_anywhere
):
    """From DEQUANT_MIN_ROWS rows on with bf16 activations: the activation quantized to MXFP8,
    both operands rewritten to row-scaled fp8 (the weight's copy only for the call), the row-wise
    fp8 GEMM; within the bf16 bound of the exact product of the quantized activation and weight."""
    n, k = 80, 96
    q, s = cx.quantize_mxfp8(torch.randn(n, k, device=device()))
    x = torch.randn(DEQUANT_MIN_ROWS + 1, k, device=device(), dtype=torch.bfloat16)
    bias = torch.randn(n, device=device(), dtype=torch.bfloat16)
    assert cx.mxfp8_linear_path(x, n).name == "rowwise-fp8"
    route, _ = triton_blockscaled.mxfp8_gemm_route(x.device, len(x), k, n, torch.bfloat16)
    assert route == "rowwise-fp8"
    with cx.backend_trace() as trace:
        out = cx.mxfp8_linear(x, q, s, bias)
    assert [op for op, _ in trace] == ["quantize_mxfp8", "scaled_mm_mxfp8"]
    qx, sx = cx.quantize_mxfp8(x, backend="eager")
    exact = dequantize_mxfp8_exact(qx, sx) @ dequantize_mxfp8_exact(q, s).T + bias.double()
    assert relative_error(out, exact) < BF16_BOUND


@pytest.mark.parametrize("backend", triton_param())
def test_mxfp8_gemm_from_its_dequant_rows_on_is_f_linear_of_the_dequantized_operands(backend):
    """With a bf16 output and MXFP8_DEQUANT_MIN_ROWS rows or more, where the row-wise fp8 GEMM
    cannot run (here N % 16 != 0; on the CPU any N), scaled_mm_mxfp8 is cuBLAS's GEMM of both
    operands dequantized (bit for bit F.linear of eager's dequantization); below, the MX-scaled
    kernel."""
    k, n = 96, 70
    qb, sb = cx.quantize_mxfp8(torch.randn(n, k, device=device()))
    b16 = cx.dequantize_mxfp8(qb, sb, torch.bfloat16, backend="eager")
    bias = torch.randn(n, device=device())
    for m in (MXFP8_DEQUANT_MIN_ROWS, MXFP8_DEQUANT_MIN_ROWS - 1):
        a = torch.randn(m, k, device=device())
        a[:, :32] *= 64  # block scales that differ along K
        qa, sa = cx.quantize_mxfp8(a)
        out = cx.scaled_mm_mxfp8(qa, qb, sa, sb, bias, torch.bfloat16, backend=backend)
        a16 = cx.dequantize_mxfp8(qa, sa, torch.bfloat16, backend="eager")
        dequant = F.linear(a16, b16, bias.to(torch.bfloat16))
        if m >= MXFP8_DEQUANT_MIN_ROWS:
            assert_bit_equal(out, dequant)
        else:  # the kernel rounds its float32 sum with the float32 bias once: not F.linear's bits
            assert not torch.equal(out, dequant)
            assert relative_error(out, dequant) < BF16_BOUND


@pytest.mark.parametrize("backend", triton_param())
def test_mxfp8_gemm_from_its_dequant_rows_on_is_near_the_dequantized_product(
    backend, rowwise_anywhere
):
    """Where the row-wise fp8 GEMM can run (bf16 output, N % 16 == 0, sm_89/sm_90), from
    MXFP8_DEQUANT_MIN_ROWS rows on scaled_mm_mxfp8 multiplies row-scaled fp8 rewrites of both
    operands: elements of blocks far under their row's largest scale lose bits there, so the
    product is no longer bit-equal to F.linear of the dequantized operands (the contract until
    this route); it stays within the bf16 bound of the exact product, as F.linear's does."""
    k, n = 96, 80
    qb, sb = cx.quantize_mxfp8(torch.randn(n, k, device=device()))
    bias = torch.randn(n, device=device())
    m = MXFP8_DEQUANT_MIN_ROWS
    a = torch.randn(m, k, device=device())
    a[:, :32] *= 64  # block scales that differ along K: the others shift by 2^-6
    qa, sa = cx.quantize_mxfp8(a)
    route, _ = triton_blockscaled.mxfp8_gemm_route(qa.device, m, k, n, torch.bfloat16)
    assert route == "rowwise-fp8"
    a8, row_scale = cx.mxfp8_to_fp8_rowwise(qa, sa, backend="eager")
    lost = a8.double() * row_scale.double()[:, None] != dequantize_mxfp8_exact(qa, sa)
    assert lost.any()  # the shifted blocks' smallest elements: what the bound has to cover
    out = cx.scaled_mm_mxfp8(qa, qb, sa, sb, bias, torch.bfloat16, backend=backend)
    exact = dequantize_mxfp8_exact(qa, sa) @ dequantize_mxfp8_exact(qb, sb).T + bias.double()
    assert relative_error(out, exact) < BF16_BOUND


def test_the_device_and_backend_checks_trace_as_lookups(monkeypatch):
    """What the path choice asks (the capability, a backend's reason) traces under fullgraph as
    dict and attribute lookups, on any device: a stand-in capability is put where the first CUDA
    call would put it."""
    from comfyx_kernels import constraints
    from comfyx_kernels.registry import backend_unavailable_reason

    monkeypatch.setitem(constraints._capabilities, 0, (9, 0))

    def gate(x):
        capability = constraints.device_capability(0)
        usable = not backend_unavailable_reason("eager")
        return x * (2 if capability >= gemm_linear.KERNEL_CAPABILITY and usable else 3)

    torch._dynamo.reset()
    compiled = torch.compile(gate, backend="aot_eager", fullgraph=True)
    assert compiled(torch.ones(2)).tolist() == [2.0, 2.0]
