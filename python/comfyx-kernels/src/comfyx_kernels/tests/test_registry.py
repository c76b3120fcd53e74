import pytest
import torch

import comfyx_kernels
from comfyx_kernels import NoCapableBackendError, UnknownBackendError, use_backend

from .helpers import available_backends, device


def test_list_backends_contract():
    statuses = comfyx_kernels.list_backends()
    assert [s.name for s in statuses] == ["cuda", "triton", "eager"]
    for status in statuses:
        assert isinstance(status.available, bool)
        assert isinstance(status.reason, str)
        assert (status.reason == "") == status.available
    assert statuses[-1].available  # eager runs everywhere


def test_highest_priority_capable_backend_runs():
    # On a GPU machine cuda must win; on a CPU, triton (interpreted) or else eager.
    x = torch.randn(16, 16, device=device())
    comfyx_kernels.quantize_per_tensor_fp8(x, torch.tensor(0.1, device=x.device))
    assert comfyx_kernels.last_backend() == available_backends()[0]


def test_use_backend_eager_runs_eager_and_is_traced():
    x = torch.randn(8, 8)
    with comfyx_kernels.backend_trace() as trace, use_backend("eager"):
        comfyx_kernels.quantize_per_tensor_fp8(x, torch.tensor(0.1))
        comfyx_kernels.apply_rope1(x.reshape(1, 1, 8, 8), torch.randn(1, 1, 8, 4, 2, 2))
    assert trace == [("quantize_per_tensor_fp8", "eager"), ("apply_rope1", "eager")]


def test_use_backend_never_falls_back():
    # cuda cannot take a CPU tensor: use_backend("cuda") must raise, not run another backend.
    x = torch.randn(8, 8)
    with use_backend("cuda"), pytest.raises(NoCapableBackendError) as error:
        comfyx_kernels.quantize_per_tensor_fp8(x, torch.tensor(0.1))
    assert list(error.value.reasons) == ["cuda"]


def test_unknown_backend():
    with pytest.raises(UnknownBackendError, match="known: cuda, triton, eager"), use_backend("x"):
        pass


@pytest.mark.parametrize(
    ("make_args", "expected"),
    [
        (lambda: (torch.randn(4, 4), torch.tensor(0.1, dtype=torch.float64)), "scale has dtype"),
        (lambda: (torch.randn(4, 4, dtype=torch.float64), torch.tensor(0.1)), "x has dtype"),
        (lambda: (torch.randn(4, 4), torch.tensor([0.1, 0.2])), "must hold one element"),
        (lambda: (torch.randn(4, 4, device="meta"), torch.tensor(0.1)), "x is on meta"),
    ],
    ids=["scale-dtype", "input-dtype", "scale-shape", "device"],
)
def test_bad_input_names_the_problem_per_backend(make_args, expected):
    x, scale = make_args()
    with pytest.raises(NoCapableBackendError) as error:
        comfyx_kernels.quantize_per_tensor_fp8(x, scale)
    assert set(error.value.reasons) == {"cuda", "triton", "eager"}
    assert expected in error.value.reasons["eager"]
    assert expected in str(error.value)


def test_scale_on_another_device_is_rejected():
    if not torch.cuda.is_available():
        pytest.skip("needs a CUDA device")
    x = torch.randn(4, 4, device="cuda")
    with pytest.raises(NoCapableBackendError, match="scale is on cpu"):
        comfyx_kernels.quantize_per_tensor_fp8(x, torch.tensor(0.1))


def test_bad_rope_shapes_are_errors_not_asserts():
    x = torch.randn(1, 2, 8, 6)
    with pytest.raises(NoCapableBackendError, match=r"must end in \(3, 2, 2\)"):
        comfyx_kernels.apply_rope1(x, torch.randn(1, 1, 8, 4, 2, 2))
    with pytest.raises(NoCapableBackendError, match="does not broadcast"):
        comfyx_kernels.apply_rope1(x, torch.randn(1, 3, 8, 3, 2, 2))
    with pytest.raises(NoCapableBackendError, match="last dimension must be even"):
        comfyx_kernels.apply_rope1(torch.randn(1, 2, 8, 5), torch.randn(1, 1, 8, 2, 2, 2))


@pytest.mark.parametrize("backend", ["triton", "cuda"])
def test_kernel_backends_refuse_non_4d_rope_but_eager_takes_it(backend):
    x = torch.randn(2, 8, 16, device=device())  # (batch, seq, dim): no head axis
    freqs = torch.randn(1, 8, 8, 2, 2, device=device())
    with pytest.raises(NoCapableBackendError) as error, use_backend(backend):
        comfyx_kernels.apply_rope1(x, freqs)
    reason = error.value.reasons[backend]
    expected = "must be 4-D" if backend in available_backends() else "unavailable"
    assert expected in reason
    with use_backend("eager"):
        assert comfyx_kernels.apply_rope1(x, freqs).shape == x.shape
