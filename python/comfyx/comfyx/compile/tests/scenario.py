"""The compile nodes on real ComfyUI in one process, as a test scenario; prints a JSON report.

Run by ``test_comfyui_compile.py`` in processes of their own (ComfyUI's modules hold global
state, and the warm-cache check needs a second process):

    python scenario.py --comfyui DIR full   # eager vs compiled sampling, reuse, config change, clones, LoRA
    python scenario.py --comfyui DIR warm   # the first compiled sampling only (run with the same cache dir)

The model is the tiny SD1.5-architecture UNet of ``comfyx.testing.checkpoint``, fp32 on the
CPU, sampled by ComfyUI's own KSampler code (``nodes.common_ksampler``).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

SETTINGS = {
    "backend": "inductor", "fullgraph": False, "mode": "default", "dynamic": False, "dynamo_cache_size_limit": 64,
    "compile_transformer_blocks_only": True, "reuse_if_similar": True, "experimental_ptx": False,
    "ptx_fast_math": False, "warmup_runs": 1,
}  # fmt: skip
LATENT = (1, 4, 8, 8)


def _import_comfyui(comfyui: Path) -> None:
    sys.path.insert(0, str(comfyui))
    import comfy.cli_args

    comfy.cli_args.args.cpu = True
    # ComfyUI's CPU default (split attention) asks psutil for free memory inside the model,
    # which dynamo cannot trace; PyTorch attention is what it uses on GPUs
    comfy.cli_args.args.use_pytorch_cross_attention = True


def _tiny_patcher() -> Any:
    import comfy.model_base
    import comfy.model_patcher
    import comfy.supported_models
    import torch

    from comfyx.testing.checkpoint import TINY_UNET

    base = comfy.model_base.BaseModel(comfy.supported_models.SD15(dict(TINY_UNET)), device="cpu")
    generator = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for param in base.parameters():
            param.copy_(torch.randn(param.shape, generator=generator) * 0.05)
    cpu = torch.device("cpu")
    return comfy.model_patcher.ModelPatcher(base, load_device=cpu, offload_device=cpu)


def _sample(model: Any, seed: int = 0) -> Any:
    import nodes
    import torch

    generator = torch.Generator().manual_seed(1)
    positive = [[torch.randn(1, 77, 768, generator=generator), {}]]
    negative = [[torch.randn(1, 77, 768, generator=generator), {}]]
    latent = {"samples": torch.zeros(LATENT)}
    return nodes.common_ksampler(model, seed, 2, 7.0, "euler", "normal", positive, negative, latent)[0]["samples"]


def _apply(model: Any, **changes: Any) -> Any:
    from comfyx.compile.nodes import ApplyTorchCompile, TorchCompileSpeedSettings

    (args,) = TorchCompileSpeedSettings().settings(**{**SETTINGS, **changes})
    return ApplyTorchCompile().apply(model, args)[0]


def _frames() -> int:
    from torch._dynamo.utils import counters

    return int(counters["frames"]["ok"])


def _rel(a: Any, b: Any) -> float:
    return float((a - b).norm() / b.norm())


def full() -> dict:
    from comfyx.compile.apply import compiled_model_of

    report: dict[str, Any] = {}
    base = _tiny_patcher()
    reference = _sample(base)

    compiled = _apply(base)
    out = _sample(compiled)
    first = compiled_model_of(compiled)
    report["first"] = {"rel_err": _rel(out, reference), "metrics": first.metrics.summary()}

    # a second prompt: ComfyUI re-runs the apply node on a new clone (e.g. after an upstream change)
    again = _apply(base)
    before = _frames()
    _sample(again, seed=1)
    report["second_prompt"] = {"frames": _frames() - before, "same_compiled": compiled_model_of(again) is first}

    # fast math changes the generated code (a different inductor config): a new compile
    changed = _apply(base, ptx_fast_math=True)
    before = _frames()
    changed_out = _sample(changed)
    report["changed_config"] = {"frames": _frames() - before, "same_compiled": compiled_model_of(changed) is first,
                                "rel_err": _rel(changed_out, reference)}  # fmt: skip

    # the clone the compile was applied to, and the model underneath, stay eager
    before = _frames()
    eager_again = _sample(base)
    report["original"] = {
        "frames": _frames() - before,
        "identical_to_reference": bool((eager_again == reference).all()),
        "has_compile_wrapper": compiled_model_of(base) is not None,
        "diffusion_model_class": type(base.model.diffusion_model).__name__,
    }

    # a LoRA-style weight patch on the compiled clone reaches the compiled code
    key = "diffusion_model.out.2.weight"
    weight = base.model.diffusion_model.out[2].weight
    delta = (0.2 * __import__("torch").ones_like(weight),)
    patched_compiled, patched_eager = compiled.clone(), base.clone()
    for patcher in (patched_compiled, patched_eager):
        patcher.add_patches({key: delta}, 1.0)
    before = _frames()
    lora_compiled = _sample(patched_compiled)
    report["lora"] = {
        "frames": _frames() - before,
        "rel_err_vs_eager_patched": _rel(lora_compiled, _sample(patched_eager)),
        "rel_change_vs_unpatched": _rel(lora_compiled, out),
    }
    return report


def warm() -> dict:
    from comfyx.compile.apply import compiled_model_of

    compiled = _apply(_tiny_patcher())
    _sample(compiled)
    return {"metrics": compiled_model_of(compiled).metrics.summary()}


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--comfyui", type=Path, required=True)
    parser.add_argument("scenario", choices=["full", "warm"])
    args = parser.parse_args()
    _import_comfyui(args.comfyui)
    import torch

    with torch.inference_mode():  # as ComfyUI runs its nodes
        report = full() if args.scenario == "full" else warm()
    print("REPORT " + json.dumps(report))
    return 0


if __name__ == "__main__":
    sys.exit(main())
