import json

import pytest
import torch

from comfyx_kernels.checkpoint import from_checkpoint, to_checkpoint
from comfyx_kernels.quantized_tensor import QuantizedTensor

from .helpers import assert_bit_equal

safetensors_torch = pytest.importorskip("safetensors.torch", reason="pip install safetensors")


def model_state(fp8_dtype=torch.float8_e4m3fn):
    torch.manual_seed(0)
    return {
        "blocks.0.attn.qkv.weight": QuantizedTensor.from_float(
            torch.randn(96, 32, dtype=torch.bfloat16), dtype=fp8_dtype
        ),
        "blocks.0.attn.qkv.bias": torch.randn(96, dtype=torch.bfloat16),
        "blocks.0.attn.qkv.input_scale": torch.tensor(0.031),
        "blocks.0.mlp.weight": QuantizedTensor.from_float(
            torch.randn(64, 32, dtype=torch.bfloat16), dtype=fp8_dtype
        ),
        "norm.weight": torch.randn(32, dtype=torch.bfloat16),
    }


def through_safetensors(tensors, tmp_path):
    path = tmp_path / "model.safetensors"
    safetensors_torch.save_file(tensors, str(path))
    return safetensors_torch.load_file(str(path))


def assert_same_state(loaded, original):
    assert set(loaded) == set(original)
    for key, value in original.items():
        if isinstance(value, QuantizedTensor):
            assert isinstance(loaded[key], QuantizedTensor), key
            assert_bit_equal(loaded[key].qdata, value.qdata)
            assert_bit_equal(loaded[key].scale, value.scale)
            assert loaded[key].dtype == value.dtype
        else:
            assert_bit_equal(loaded[key], value)


def test_scaled_fp8_layout_is_what_comfyui_0_3_64_reads(tmp_path):
    on_disk = through_safetensors(
        to_checkpoint(model_state(), "scaled_fp8", prefix="model.diffusion_model."), tmp_path
    )
    marker = on_disk["model.diffusion_model.scaled_fp8"]
    assert marker.dtype == torch.float8_e4m3fn and marker.numel() == 0
    assert on_disk["blocks.0.attn.qkv.weight"].dtype == torch.float8_e4m3fn
    assert on_disk["blocks.0.attn.qkv.scale_weight"].dtype == torch.float32
    assert on_disk["blocks.0.attn.qkv.scale_input"].item() == pytest.approx(0.031)
    assert "blocks.0.mlp.scale_input" not in on_disk
    assert_same_state(from_checkpoint(on_disk), model_state())


@pytest.mark.parametrize("fp8_dtype", [torch.float8_e4m3fn, torch.float8_e5m2], ids=str)
def test_comfy_quant_layout(tmp_path, fp8_dtype):
    on_disk = through_safetensors(to_checkpoint(model_state(fp8_dtype), "comfy_quant"), tmp_path)
    config = json.loads(bytes(on_disk["blocks.0.mlp.comfy_quant"].tolist()))
    assert config == {"format": str(fp8_dtype).removeprefix("torch.")}
    assert on_disk["blocks.0.mlp.weight_scale"].dtype == torch.float32
    assert on_disk["blocks.0.attn.qkv.input_scale"].item() == pytest.approx(0.031)
    assert not any(key.endswith("scaled_fp8") for key in on_disk)
    assert_same_state(from_checkpoint(on_disk), model_state(fp8_dtype))


def test_format_conversion_scaled_fp8_to_comfy_quant():
    legacy = to_checkpoint(model_state(), "scaled_fp8")
    modern = to_checkpoint(from_checkpoint(legacy), "comfy_quant")
    assert_same_state(from_checkpoint(modern), model_state())


def test_errors_name_the_problem():
    with pytest.raises(ValueError, match="unknown checkpoint format"):
        to_checkpoint({}, "nvfp4")
    broken = to_checkpoint(model_state(), "comfy_quant")
    del broken["blocks.0.mlp.weight_scale"]
    with pytest.raises(ValueError, match=r"blocks\.0\.mlp\.weight_scale is missing"):
        from_checkpoint(broken)
    mislabeled = to_checkpoint(model_state(), "comfy_quant")
    mislabeled["blocks.0.mlp.comfy_quant"] = torch.tensor(
        list(b'{"format": "float8_e5m2"}'), dtype=torch.uint8
    )
    with pytest.raises(ValueError, match="says format 'float8_e5m2'"):
        from_checkpoint(mislabeled)
