"""NVFP4 and MXFP8 layers in comfyx's operation set, on real ComfyUI's classes (``comfy.ops``,
``ModelPatcher``, ``LowVramPatch``), in a process of their own (ComfyUI's modules hold global state).

Checked per format: a ``comfy_quant`` layer written by comfyx_kernels' checkpoint writer (comfy-kitchen's
keys) loads into the Linear ComfyUI builds for a scaled fp8 model and computes the dequantized weight's
product; it saves back with its ``comfy_quant``; a LoRA patched through ModelPatcher (whole and
``--lowvram``'s per-call patch) moves the output to the float model's with the LoRA and unpatching restores
the layer bit for bit; a layer missing a tensor or of the wrong shape fails naming it; Quantize Model's
per-layer quantizer writes what the checkpoint writer writes.
"""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest
from comfyx.testing.reports import run_for_report

pytestmark = pytest.mark.comfyui

SCRIPT = textwrap.dedent("""
    import json, sys
    sys.path.insert(0, sys.argv[1])
    sys.argv = ["main.py", "--cpu"]
    import comfy.cli_args
    comfy.cli_args.args.cpu = True
    import torch
    import comfy.ops, comfy.model_patcher
    from comfyx_kernels.checkpoint import from_checkpoint, to_checkpoint
    from comfyx_kernels.quantized_tensor import QuantizedTensor
    from comfyx.kernels.blockscaled import BlockScaledWeightError
    from comfyx.kernels import LayerOptions
    from comfyx.kernels.ops import operations_for

    LAYOUT = {"nvfp4": "TensorCoreNVFP4Layout", "mxfp8": "TensorCoreMXFP8Layout"}
    ops = operations_for(comfy.ops.scaled_fp8_ops(scale_input=True, override_dtype=torch.float8_e4m3fn),
                         LayerOptions(), keep_float_layers=True)
    IN, OUT = 96, 40  # 40 rows: padded to whole blocks in the file
    torch.manual_seed(0)
    weight, bias = torch.randn(OUT, IN), torch.randn(OUT)
    x = torch.randn(3, 5, IN, dtype=torch.bfloat16)

    class Model(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.l = ops.Linear(IN, OUT, bias=True)

    def loaded(sd):
        model = Model()
        model.load_state_dict(dict(sd), strict=False)
        return model

    def rel(a, b):
        return ((a.float() - b.float()).norm() / b.float().norm()).item()

    report = {}
    for fmt, layout in LAYOUT.items():
        sd = to_checkpoint({"l.weight": QuantizedTensor.from_float(weight, layout), "l.bias": bias}, "comfy_quant")
        dequantized = from_checkpoint(dict(sd), shapes={"l.weight": (OUT, IN)})["l.weight"].dequantize().float()
        r = report[fmt] = {"keys": sorted(sd)}
        model = loaded(sd)
        layer = model.l
        out = model.l(x)
        reference = torch.nn.functional.linear(x.float(), dequantized, bias)
        r["block_format"] = layer.block_format
        r["weight_dtype"] = str(layer.weight.dtype)
        r["out_shape"] = list(out.shape)
        r["out_dtype"] = str(out.dtype)
        r["error_vs_dequantized"] = rel(out, reference)
        saved = layer.state_dict()
        r["saved_keys"] = sorted(saved)
        r["round_trip_equal"] = bool(torch.equal(loaded({"l." + k: v for k, v in saved.items()}).l(x), out))

        # a LoRA-like patch through ComfyUI's ModelPatcher: patched, then unpatched
        delta = 0.05 * torch.randn(OUT, IN)
        with_delta = torch.nn.functional.linear(x.float(), dequantized + delta, bias)
        stored = layer.weight.detach().clone()
        patcher = comfy.model_patcher.ModelPatcher(model, load_device=torch.device("cpu"),
                                                   offload_device=torch.device("cpu"))
        patcher.add_patches({"l.weight": (delta,)})
        patcher.patch_model(device_to=torch.device("cpu"))
        patched = model.l(x)
        change = model.l.convert_weight(model.l.weight.float()) - dequantized  # as ComfyUI reads the weight
        r["delta_retained"] = ((change * delta).sum() / (delta * delta).sum()).item()
        r["patched_error_vs_float_with_delta"] = rel(patched, with_delta)
        r["unpatched_error_vs_float_with_delta"] = rel(out, with_delta)
        patcher.unpatch_model(device_to=torch.device("cpu"))
        r["unpatch_restores_bits"] = bool(torch.equal(model.l.weight.view(torch.uint8), stored.view(torch.uint8)))
        r["unpatched_output_equal"] = bool(torch.equal(model.l(x), out))
        # --lowvram: ComfyUI patches per call through a weight function instead
        model.l.weight_function = [comfy.model_patcher.LowVramPatch("l.weight", patcher.patches,
                                                                    model.l.convert_weight, model.l.set_weight)]
        r["lowvram_patched_equal"] = bool(torch.equal(model.l(x), patched))
        model.l.weight_function = []

        # the layer Quantize Model makes from the float weight holds what the checkpoint writer wrote
        fresh = ops.Linear(IN, OUT, bias=True)
        fresh.weight = torch.nn.Parameter(weight.clone(), requires_grad=False)
        fresh.quantize_weight_(fmt)
        def as_bytes(tensor):
            return tensor.reshape(-1).view(torch.uint8)
        r["quantized_like_checkpoint"] = all(
            torch.equal(as_bytes(getattr(fresh, name)), as_bytes(sd["l." + name]))
            for name in ("weight", "weight_scale", *(["weight_scale_2"] if fmt == "nvfp4" else [])))

        errors = {}
        for case, bad in {
            "missing": {k: v for k, v in sd.items() if k != "l.weight_scale"},
            "shape": {**sd, "l.weight": sd["l.weight"][:16]},
        }.items():
            try:
                loaded(bad)
                errors[case] = None
            except BlockScaledWeightError as error:
                errors[case] = str(error)
        r["errors"] = errors
    print("REPORT " + json.dumps(report))
""")


@pytest.fixture(scope="module")
def report(comfyui: Path) -> dict:
    return run_for_report(["-c", SCRIPT, str(comfyui)], timeout=600)


# A 5% patch rounded stochastically at the layer's scales: measured here, the weight moves by 0.96 (NVFP4) and
# 1.00 (MXFP8) times the patch (projected on it), and the output is 0.092 / 0.035 from the float weight plus
# the patch (the rounding noise; 0.053 / 0.051 unpatched).
PATCHED_ERROR = {"nvfp4": 0.15, "mxfp8": 0.06}


@pytest.mark.parametrize("fmt", ["nvfp4", "mxfp8"])
def test_a_comfy_quant_layer_loads_runs_and_saves_in_its_format(report: dict, fmt: str) -> None:
    r = report[fmt]
    assert r["block_format"] == fmt
    assert r["weight_dtype"] == ("torch.uint8" if fmt == "nvfp4" else "torch.float8_e4m3fn")  # stays quantized
    assert r["out_shape"] == [3, 5, 40] and r["out_dtype"] == "torch.bfloat16"
    assert r["error_vs_dequantized"] < 0.01  # bf16 output of the exact product
    assert "l.comfy_quant" in r["keys"]
    assert sorted("l." + k for k in r["saved_keys"]) == r["keys"]  # saved with the same keys, comfy_quant too
    assert r["round_trip_equal"]
    assert r["quantized_like_checkpoint"]


@pytest.mark.parametrize("fmt", ["nvfp4", "mxfp8"])
def test_a_weight_patch_is_applied_at_the_layers_scales_and_undone(report: dict, fmt: str) -> None:
    r = report[fmt]
    assert 0.85 < r["delta_retained"] < 1.15
    assert r["patched_error_vs_float_with_delta"] < PATCHED_ERROR[fmt]
    assert r["unpatch_restores_bits"] and r["unpatched_output_equal"]
    assert r["lowvram_patched_equal"]


@pytest.mark.parametrize("fmt", ["nvfp4", "mxfp8"])
def test_an_incomplete_or_misshapen_layer_is_refused_by_name(report: dict, fmt: str) -> None:
    errors = report[fmt]["errors"]
    assert errors["missing"] == f"l.comfy_quant declares {fmt}, but l.weight_scale missing"
    stored = "torch.uint8 (48, 48)" if fmt == "nvfp4" else "torch.float8_e4m3fn (64, 96)"
    assert errors["shape"].startswith(f"l.weight is {stored[:stored.index(' ')]} (16, ")
    assert errors["shape"].endswith(f"a {fmt} layer of 96 in and 40 out features stores {stored}")
