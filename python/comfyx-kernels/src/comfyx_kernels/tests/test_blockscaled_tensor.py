"""QuantizedTensor with NVFP4 / MXFP8 layouts, comfy_quant checkpoints, and interchange with
comfy-kitchen's QuantizedTensor and checkpoints."""

import dataclasses
import json
import logging

import pytest
import torch

from comfyx_kernels.checkpoint import from_checkpoint, to_checkpoint
from comfyx_kernels.tensor import (
    QuantizedTensor,
    TensorCoreMXFP8Layout,
    TensorCoreNVFP4Layout,
    get_layout_class,
)

from .helpers import assert_bit_equal, device

LAYOUTS = [TensorCoreNVFP4Layout.name, TensorCoreMXFP8Layout.name]
# Relative error of one quantization (RMS, random normal weights): NVFP4 about 10%, MXFP8 3%.
QUANTIZATION_ERROR = {TensorCoreNVFP4Layout.name: 0.15, TensorCoreMXFP8Layout.name: 0.05}


def relative_error(actual: torch.Tensor, reference: torch.Tensor) -> float:
    reference = reference.double()
    return float((actual.double() - reference).norm() / reference.norm())


def weight(rows=50, cols=72, dtype=torch.bfloat16) -> torch.Tensor:
    return torch.randn(rows, cols, device=device(), dtype=dtype)


@pytest.mark.parametrize("layout", LAYOUTS)
def test_from_float_pads_storage_keeps_logical_shape(layout):
    w = weight()
    qw = QuantizedTensor.from_float(w, layout)
    pad = get_layout_class(layout).PAD
    assert qw.shape == (50, 72) and qw.dtype == torch.bfloat16
    assert qw.dequantize().shape == (50, 72)
    rows = -(-50 // pad) * pad
    assert qw.storage_shape[0] == rows
    assert relative_error(qw.dequantize(), w) < QUANTIZATION_ERROR[layout]


@pytest.mark.parametrize("layout", LAYOUTS)
def test_linear_and_decomposed_mm_stay_quantized(layout, caplog):
    qw = QuantizedTensor.from_float(weight(), layout)
    x = torch.randn(3, 5, 72, device=device(), dtype=torch.bfloat16)
    bias = torch.randn(50, device=device(), dtype=torch.bfloat16)
    with caplog.at_level(logging.WARNING):
        out = torch.nn.functional.linear(x, qw, bias)
        transposed = qw.t()
        assert isinstance(transposed, QuantizedTensor) and transposed.shape == (72, 50)
        via_mm = torch.addmm(bias, x.reshape(-1, 72), transposed)
        no_bias = torch.mm(x.reshape(-1, 72), transposed)
    assert not [r for r in caplog.records if "dequantizing" in r.getMessage()]
    reference = torch.nn.functional.linear(x.double(), qw.dequantize().double(), bias.double())
    bound = 0.05 if out.is_cuda else 4e-3  # GPUs quantize the MXFP8 activation as well
    assert out.shape == (3, 5, 50) and relative_error(out, reference) < bound
    torch.testing.assert_close(via_mm, out.reshape(-1, 50), rtol=0, atol=0)
    torch.testing.assert_close(no_bias + bias, via_mm, rtol=1e-2, atol=1e-2)
    assert_bit_equal(transposed.dequantize(), qw.dequantize().t())


@pytest.mark.parametrize("layout", LAYOUTS)
def test_bookkeeping_ops(layout):
    qw = QuantizedTensor.from_float(weight(), layout)
    for result in (qw.detach(), qw.clone(), qw.to(device()), qw.view(50, 72), qw.reshape(-1, 72)):
        assert isinstance(result, QuantizedTensor) and result.shape == (50, 72)
        assert_bit_equal(result.dequantize(), qw.dequantize())
    half = qw.to(torch.float16)
    assert half.dtype == torch.float16 and half.dequantize().dtype == torch.float16
    flat = qw.reshape(-1)  # no quantized form: dequantizes (with a warning)
    assert type(flat) is torch.Tensor and flat.shape == (3600,)
    target = QuantizedTensor.from_float(torch.zeros_like(weight()), layout)
    target.copy_(qw)
    assert_bit_equal(target.dequantize(), qw.dequantize())


def test_copy_of_a_float_weight_keeps_the_nvfp4_tensor_scale():
    qw = QuantizedTensor.from_float(weight(), TensorCoreNVFP4Layout.name, scale=0.01)
    source = weight()
    qw.copy_(source)
    assert qw.scale.item() == pytest.approx(0.01)
    assert_bit_equal(
        qw.dequantize(), QuantizedTensor.from_float(source, qw.layout_cls, 0.01).dequantize()
    )


@pytest.mark.parametrize("layout", LAYOUTS)
def test_comfy_quant_checkpoint_round_trip(layout, tmp_path):
    safetensors_torch = pytest.importorskip("safetensors.torch")
    state = {
        "blocks.0.mlp.weight": QuantizedTensor.from_float(weight(50, 72).cpu(), layout),
        "blocks.0.mlp.bias": torch.randn(50, dtype=torch.bfloat16),
        "blocks.0.mlp.input_scale": torch.tensor(0.02),
    }
    path = tmp_path / "model.safetensors"
    safetensors_torch.save_file(to_checkpoint(state, "comfy_quant"), str(path))
    on_disk = safetensors_torch.load_file(str(path))
    fmt = {TensorCoreNVFP4Layout.name: "nvfp4", TensorCoreMXFP8Layout.name: "mxfp8"}[layout]
    assert json.loads(bytes(on_disk["blocks.0.mlp.comfy_quant"].tolist())) == {"format": fmt}
    expected_keys = {"weight", "weight_scale", "bias", "input_scale", "comfy_quant"}
    if layout == TensorCoreNVFP4Layout.name:
        expected_keys.add("weight_scale_2")
    assert {k.removeprefix("blocks.0.mlp.") for k in on_disk} == expected_keys
    loaded = from_checkpoint(on_disk, shapes={"blocks.0.mlp.weight": (50, 72)})
    assert loaded["blocks.0.mlp.weight"].shape == (50, 72)
    assert_bit_equal(
        loaded["blocks.0.mlp.weight"].dequantize(), state["blocks.0.mlp.weight"].dequantize()
    )
    assert loaded["blocks.0.mlp.input_scale"].item() == pytest.approx(0.02)
    with pytest.raises(ValueError, match="scaled_fp8 holds FP8 weights only"):
        to_checkpoint(state, "scaled_fp8")
    del on_disk["blocks.0.mlp.weight_scale"]
    with pytest.raises(ValueError, match=r"weight_scale is missing"):
        from_checkpoint(on_disk)


@pytest.mark.parametrize("layout", LAYOUTS)
def test_checkpoints_interchange_with_comfy_kitchen(layout):
    kitchen_tensor = pytest.importorskip("comfy_kitchen.tensor", reason="pip install comfy-kitchen")
    w = weight(64, 96).cpu()
    theirs = kitchen_tensor.QuantizedTensor.from_float(w, layout)
    ours = QuantizedTensor.from_float(w, layout)
    # Same quantization, same keys: what one library saves the other loads.
    assert theirs.state_dict("w").keys() == ours.state_dict("w").keys()
    for key, tensor in theirs.state_dict("w").items():
        assert_bit_equal(ours.state_dict("w")[key], tensor)
    fmt = {TensorCoreNVFP4Layout.name: "nvfp4", TensorCoreMXFP8Layout.name: "mxfp8"}[layout]
    on_disk = {
        f"l.{k.removeprefix('w')}".replace("l.", "l.weight", 1): v
        for k, v in theirs.state_dict("w").items()
    }
    on_disk["l.comfy_quant"] = torch.tensor(
        list(json.dumps({"format": fmt}).encode()), dtype=torch.uint8
    )
    loaded = from_checkpoint(on_disk)["l.weight"]
    assert_bit_equal(loaded.dequantize(), theirs.dequantize())
    # comfy-kitchen's constructor form and Params, from our tensors.
    again = QuantizedTensor(theirs._qdata, layout, theirs._params)
    assert_bit_equal(again.dequantize(), theirs.dequantize())
    assert again._layout_cls == theirs._layout_cls == layout
    fields = {f.name for f in dataclasses.fields(theirs._params)}
    params = type(theirs._params)(**{k: v for k, v in vars(ours.params).items() if k in fields})
    back = kitchen_tensor.QuantizedTensor(ours.qdata, layout, params)
    assert_bit_equal(back.dequantize(), ours.dequantize())


@pytest.mark.parametrize(
    "compile_backend", ["aot_eager"] + (["inductor"] if torch.cuda.is_available() else [])
)
@pytest.mark.parametrize("layout", LAYOUTS)
def test_torch_compile_traces_through(layout, compile_backend):
    qw = QuantizedTensor.from_float(weight(64, 96), layout)
    x = torch.randn(5, 96, device=device(), dtype=torch.bfloat16)

    def forward(x, w):
        return torch.nn.functional.linear(x, w) * 2

    compiled = torch.compile(forward, backend=compile_backend, fullgraph=True)
    torch.testing.assert_close(compiled(x, qw), forward(x, qw), rtol=1e-2, atol=1e-2)
