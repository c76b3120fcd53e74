"""comfyx's kernels in real ComfyUI workflows, through ``comfyx serve`` (CPU, tiny random-weight models).

On a CPU no fp8 GEMM runs: fp8 layers multiply dequantized (comfyx's eager kernels), as ComfyUI
runs fp8 weights, and the log says why. What is checked here holds on a GPU too: every fp8
checkpoint format loads with its scales (an image close to the bf16 one), the Quantize Model
node leaves the model other branches use untouched, and a LoRA after it is applied.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from comfyx.bench.workflows import with_seed
from comfyx.testing.checkpoint import (
    BLOCK_FORMATS,
    FP8_FORMATS,
    block_scaled_state_dict,
    fp8_state_dict,
    lora_state_dict,
)
from comfyx.testing.images import psnr, read_rgb
from comfyx.testing.workflows import txt2img

pytestmark = [pytest.mark.comfyui, pytest.mark.slow]

LORA_LAYERS = [f"diffusion_model.input_blocks.1.1.transformer_blocks.0.{name}"
               for name in ("attn1.to_q", "attn1.to_v", "attn2.to_out.0", "ff.net.2")]
# PSNR of each format's image against the bf16 one (tiny SD1.5, 4 steps): measured here 64 dB for
# the scaled formats (a per-tensor scale per layer) and 60 dB for plain fp8 (no scale); the comfy_quant
# checkpoint read without its scales, 33 dB (the tiny random UNet moves the image little).
MIN_PSNR = {"scaled_fp8": 50.0, "comfy_quant": 50.0, "fp8": 45.0}


@pytest.fixture(scope="module")
def fp8_models(tiny_models, tmp_path_factory) -> Path:
    """The tiny checkpoint in each fp8 format, and a LoRA for it, in a models directory of their own."""
    from safetensors.torch import load_file, save_file

    root = tmp_path_factory.mktemp("fp8-models")
    (root / "checkpoints").mkdir()
    (root / "loras").mkdir()
    state = load_file(str(tiny_models.root / "checkpoints" / tiny_models.checkpoint))
    for fmt in FP8_FORMATS:
        save_file(fp8_state_dict(state, fmt), str(root / "checkpoints" / f"tiny-{fmt}.safetensors"))
    for fmt in BLOCK_FORMATS:
        save_file(block_scaled_state_dict(state, fmt), str(root / "checkpoints" / f"tiny-{fmt}.safetensors"))
    save_file(lora_state_dict(state, LORA_LAYERS, scale=0.1), str(root / "loras" / "tiny-lora.safetensors"))
    (root / "checkpoints" / "tiny.safetensors").symlink_to(tiny_models.root / "checkpoints" / tiny_models.checkpoint)
    config = root / "extra_model_paths.yaml"
    config.write_text(f"fp8_tests:\n  base_path: {root}\n  checkpoints: checkpoints\n  loras: loras\n")
    return config


def start(comfyx_server, fp8_models, out: Path, *comfyx_args: str):
    return comfyx_server("--extra-model-paths-config", str(fp8_models), "--output-directory", str(out),
                         comfyx_args=list(comfyx_args))


def image_of(run, out: Path, node: str = "7"):
    assert run.error() is None, run.error()
    image = run.history["outputs"][node]["images"][0]
    return read_rgb(out / image["subfolder"] / image["filename"])


def test_every_fp8_format_loads_with_its_scales(comfyx_server, fp8_models, tiny_models, tmp_path):
    out = tmp_path / "out"
    server = start(comfyx_server, fp8_models, out)
    reference = image_of(server.run_prompt(txt2img("tiny.safetensors", prefix="bf16", steps=4)), out)
    for fmt in FP8_FORMATS:
        image = image_of(server.run_prompt(txt2img(f"tiny-{fmt}.safetensors", prefix=fmt, steps=4)), out)
        assert psnr(reference, image) >= MIN_PSNR[fmt], (fmt, psnr(reference, image))
    log = server.log_tail(2000)
    layers = fp8_linear_count("comfy_quant", tiny_models)
    assert (f"comfyx kernels: SD15 checkpoint with comfy_quant layers ({layers} float8_e4m3fn): loading them as "
            "scaled fp8 (float8_e4m3fn)") in log
    # on this CPU the fp8 layers cannot multiply in fp8; the log says so once (as often as a message
    # logged once at start-up appears: ComfyUI's handlers decide how many lines a record makes), with the reason
    once = log.count("comfyx backend cpu: requested")
    assert once >= 1 and log.count("comfyx kernels: fp8 layers run dequantized, as ComfyUI runs them: fp8 matmul "
                                   "needs a CUDA device, operands are on cpu") == once, log
    assert "Torch already imported" not in log  # nothing of comfyx imports torch before ComfyUI's main.py


def test_without_comfyx_kernels_a_comfy_quant_checkpoint_loses_its_scales(comfyx_server, fp8_models, tmp_path):
    # ComfyUI v0.3.64 alone does not know comfy_quant: the weights load unscaled (what the kernels fix)
    out = tmp_path / "out"
    server = start(comfyx_server, fp8_models, out, "--no-kernels")
    reference = image_of(server.run_prompt(txt2img("tiny.safetensors", prefix="bf16", steps=4)), out)
    image = image_of(server.run_prompt(txt2img("tiny-comfy_quant.safetensors", prefix="cq", steps=4)), out)
    assert psnr(reference, image) < 40.0  # measured 33 dB


def with_quantized_branch(prompt: dict, lora: str | None = None, plain: bool = True, fmt: str = "fp8") -> dict:
    """``prompt`` (txt2img) plus a branch from the same loaded checkpoint through Quantize Model (and a LoRA)."""
    prompt = {**prompt, "q.quantize": {"class_type": "ComfyxQuantizeModel",
                                       "inputs": {"model": ["1", 0], "format": fmt, "layers": "all"}}}
    model = ["q.quantize", 0]
    if lora:
        prompt["q.lora"] = {"class_type": "LoraLoaderModelOnly",
                            "inputs": {"model": model, "lora_name": lora, "strength_model": 1.0}}
        model = ["q.lora", 0]
    prompt["q.sample"] = {**prompt["5"], "inputs": {**prompt["5"]["inputs"], "model": model}}
    prompt["q.decode"] = {"class_type": "VAEDecode", "inputs": {"samples": ["q.sample", 0], "vae": ["1", 2]}}
    prompt["q.save"] = {"class_type": "SaveImage", "inputs": {"images": ["q.decode", 0], "filename_prefix": "quant"}}
    if not plain:
        for node in ("5", "6", "7"):
            del prompt[node]
    return prompt


def test_quantize_model_node_leaves_the_source_model_untouched(comfyx_server, fp8_models, tmp_path):
    out = tmp_path / "out"
    server = start(comfyx_server, fp8_models, out)
    plain_prompt = txt2img("tiny.safetensors", prefix="plain", steps=3)
    alone = image_of(server.run_prompt(plain_prompt), out)
    both = server.run_prompt(with_quantized_branch(plain_prompt))
    assert (image_of(both, out) == alone).all()  # the plain branch samples the model as loaded
    quantized = image_of(both, out, "q.save")
    assert 40.0 <= psnr(alone, quantized) < float("inf"), psnr(alone, quantized)
    # the loaded checkpoint is ComfyUI's cached node output: switching between the two models
    # (each prompt only re-runs the samplers) swaps the fp8 layers in and out
    for seed in (1, 2):
        reseeded = with_seed(plain_prompt, seed)
        plain_image = image_of(server.run_prompt(reseeded), out)
        quantized_image = image_of(server.run_prompt(with_quantized_branch(reseeded, plain=False)), out, "q.save")
        assert 40.0 <= psnr(plain_image, quantized_image) < float("inf")
    assert (image_of(server.run_prompt(plain_prompt), out) == alone).all()
    log = server.log_tail(2000)
    assert "Linear layers quantized to fp8 (all) in a clone; the source model is unchanged" in log, log


def test_lora_after_quantize_model_is_applied_at_the_fp8_scale(comfyx_server, fp8_models, tmp_path):
    out = tmp_path / "out"
    server = start(comfyx_server, fp8_models, out)
    plain_lora = txt2img("tiny.safetensors", prefix="lora", steps=3)
    plain_lora["l"] = {"class_type": "LoraLoaderModelOnly",
                       "inputs": {"model": ["1", 0], "lora_name": "tiny-lora.safetensors", "strength_model": 1.0}}
    plain_lora["5"]["inputs"]["model"] = ["l", 0]
    with_lora = image_of(server.run_prompt(plain_lora), out)
    plain_prompt = txt2img("tiny.safetensors", prefix="plain", steps=3)
    run = server.run_prompt(with_quantized_branch(plain_prompt, lora="tiny-lora.safetensors"))
    plain, quantized_lora = image_of(run, out), image_of(run, out, "q.save")
    quantized = image_of(server.run_prompt(with_quantized_branch(plain_prompt, plain=False)), out, "q.save")
    # the LoRA moves the quantized model's image towards the bf16 model's with the LoRA (measured:
    # 61.6 dB from it with the LoRA, 52.4 dB without; the plain model's is 52.6 dB from it)
    assert psnr(with_lora, quantized_lora) > psnr(with_lora, quantized) + 6.0
    assert psnr(with_lora, quantized_lora) > psnr(with_lora, plain) + 6.0


def fp8_linear_count(fmt: str, tiny_models) -> int:
    from safetensors.torch import load_file

    state = load_file(str(tiny_models.root / "checkpoints" / tiny_models.checkpoint))
    return sum(1 for key, value in fp8_state_dict(state, fmt).items()
               if key.startswith("model.diffusion_model.") and value.ndim == 2 and value.element_size() == 1)


def test_calibrated_activation_scales_are_fixed_on_the_first_step(comfyx_server, fp8_models, tiny_models, tmp_path):
    out = tmp_path / "out"
    server = start(comfyx_server, fp8_models, out)  # calibrated: the default
    dynamic_out = tmp_path / "dynamic"
    dynamic = start(comfyx_server, fp8_models, dynamic_out, "--fp8-activation-scale", "dynamic")
    prompt = txt2img("tiny-scaled_fp8.safetensors", prefix="scaled", steps=3)
    # on this CPU fp8 layers multiply dequantized: the scales change nothing, the calibration pass
    # must not either (nor the second prompt, which finds the scales fixed)
    for seed in (1, 2):
        calibrated = image_of(server.run_prompt(with_seed(prompt, seed)), out)
        assert (calibrated == image_of(dynamic.run_prompt(with_seed(prompt, seed)), dynamic_out)).all(), seed
    log = server.log_tail(2000)
    layers = fp8_linear_count("scaled_fp8", tiny_models)  # every fp8 Linear runs in the first step
    assert f"UNetModel: {layers} fp8 layers got calibrated activation scales" in log, (layers, log)
    assert "; 0 not reached by the first step keep dynamic ones (the pass took " in log
    assert log.count("fp8 layers got calibrated activation scales") == 1  # once per model, not per prompt
    # the Quantize Model node's clone gets scales on its first step too: quantized from the same bf16
    # weights as the scaled_fp8 file's, its fp8 weights are that file's, and so are its scales
    run = server.run_prompt(with_quantized_branch(txt2img("tiny.safetensors", prefix="plain", steps=3)))
    image_of(run, out, "q.save")
    log = server.log_tail(2000)
    assert log.count("fp8 layers got calibrated activation scales") == 1, log
    assert log.count(f"UNetModel: {layers} fp8 layers took the activation scales calibrated before for the same "
                     "weights") == 1, log
    assert "calibrated activation scales" not in dynamic.log_tail(2000)



def test_a_restarted_server_takes_the_scales_calibrated_before_unless_the_weights_differ(
        comfyx_server, fp8_models, tiny_models, tmp_path):
    cache, out = tmp_path / "cache", tmp_path / "out"
    prompt = txt2img("tiny-scaled_fp8.safetensors", prefix="scaled", steps=3)
    first = start(comfyx_server, fp8_models, out, "--cache-dir", str(cache))
    image = image_of(first.run_prompt(prompt), out)
    first.stop()
    layers = fp8_linear_count("scaled_fp8", tiny_models)
    assert f"UNetModel: {layers} fp8 layers got calibrated activation scales" in first.log_tail(2000)
    stored = list((cache / "calibration").glob("*.json"))
    assert len(stored) == 1, stored
    restarted = start(comfyx_server, fp8_models, out, "--cache-dir", str(cache))
    assert (image_of(restarted.run_prompt(prompt), out) == image).all()
    log = restarted.log_tail(2000)
    assert (f"UNetModel: {layers} fp8 layers took the activation scales calibrated before for the same weights"
            in log
            and f"{stored[0]}); 0 keep dynamic ones" in log), log
    assert "got calibrated activation scales" not in log  # no calibration pass
    restarted.stop()
    # a LoRA merged into the weights: other weights, other activations; calibrated and stored anew
    with_lora = {**prompt, "l": {"class_type": "LoraLoaderModelOnly", "inputs": {
        "model": ["1", 0], "lora_name": "tiny-lora.safetensors", "strength_model": 1.0}}}
    with_lora["5"] = {**prompt["5"], "inputs": {**prompt["5"]["inputs"], "model": ["l", 0]}}
    lora_server = start(comfyx_server, fp8_models, out, "--cache-dir", str(cache))
    image_of(lora_server.run_prompt(with_lora), out)
    assert f"UNetModel: {layers} fp8 layers got calibrated activation scales" in lora_server.log_tail(2000)
    assert len(list((cache / "calibration").glob("*.json"))) == 2
    # a damaged file is said and calibrated over, not trusted
    stored[0].write_text("{not json")
    damaged = start(comfyx_server, fp8_models, out, "--cache-dir", str(cache))
    assert (image_of(damaged.run_prompt(prompt), out) == image).all()
    log = damaged.log_tail(2000)
    assert f"ignoring the stored activation scales {stored[0]}" in log and "got calibrated activation" in log, log


# PSNR against the bf16 image (tiny SD1.5, 4 steps), measured here: NVFP4 59.6 dB, MXFP8 64.1 dB (the tiny
# random UNet moves the image little: a comfy_quant file read without its scales gives 33 dB).
MIN_BLOCK_PSNR = {"nvfp4": 50.0, "mxfp8": 55.0}


def test_nvfp4_and_mxfp8_checkpoints_and_quantize_model_formats(comfyx_server, fp8_models, tiny_models, tmp_path):
    out = tmp_path / "out"
    server = start(comfyx_server, fp8_models, out)
    plain_prompt = txt2img("tiny.safetensors", prefix="bf16", steps=4)
    reference = image_of(server.run_prompt(plain_prompt), out)
    layers = fp8_linear_count("comfy_quant", tiny_models)  # the same Linear layers, in each format
    for fmt in BLOCK_FORMATS:
        from_file = image_of(server.run_prompt(txt2img(f"tiny-{fmt}.safetensors", prefix=fmt, steps=4)), out)
        assert MIN_BLOCK_PSNR[fmt] <= psnr(reference, from_file) < float("inf"), (fmt, psnr(reference, from_file))
        # Quantize Model makes the same layers from the bf16 model: the same image
        both = server.run_prompt(with_quantized_branch(plain_prompt, fmt=fmt))
        assert (image_of(both, out) == reference).all()  # the source model is untouched
        assert (image_of(both, out, "q.save") == from_file).all(), fmt
    log = server.log_tail(3000)
    for fmt in BLOCK_FORMATS:
        assert (f"comfyx kernels: SD15 checkpoint with comfy_quant layers ({layers} {fmt}): loading them as scaled "
                "fp8 (float8_e4m3fn)") in log, log
        assert f"Linear layers quantized to {fmt} (all) in a clone; the source model is unchanged" in log
    # on this CPU the layers multiply dequantized, and the log says so once per format with why
    assert log.count("NVFP4 linear: fallback (dequantize + F.linear: activation on cpu)") >= 1, log
    assert log.count("MXFP8 linear: fallback (dequantize + F.linear: activation on cpu)") >= 1, log
