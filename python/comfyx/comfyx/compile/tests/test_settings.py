"""Settings, the WANCOMPILEARGS dict and the compile plan (no ComfyUI needed)."""

from __future__ import annotations

import logging

import pytest

from comfyx.compile import settings as settings_module
from comfyx.compile.nodes import NODE_CLASSES, NODE_DISPLAY_NAME_MAPPINGS, TorchCompileSpeedSettings
from comfyx.compile.settings import CACHEABLE_OPTION, CompileSettings, CompileSettingsError, plan_for

WAN_KEYS = {
    "backend", "fullgraph", "mode", "dynamic", "dynamo_cache_size_limit", "dynamo_recompile_limit",
    "compile_transformer_blocks_only", "force_parameter_static_shapes", "allow_unmerged_lora_compile",
}  # fmt: skip


def test_node_inputs_are_the_ones_users_know():
    inputs = TorchCompileSpeedSettings.INPUT_TYPES()
    assert list(inputs["required"]) == [
        "backend", "fullgraph", "mode", "dynamic", "dynamo_cache_size_limit", "compile_transformer_blocks_only",
        "reuse_if_similar", "experimental_ptx", "ptx_fast_math", "warmup_runs",
    ]  # fmt: skip
    assert set(inputs["optional"]) == {
        "dynamo_recompile_limit", "ptx_cache_dir", "force_parameter_static_shapes", "allow_unmerged_lora_compile",
        "compile_unet_regions", "compile_trace_cache",
    }  # fmt: skip
    assert inputs["required"]["mode"][1]["default"] == "speed"
    assert inputs["required"]["warmup_runs"][1] == {"default": 1, "min": 0, "max": 5}
    assert TorchCompileSpeedSettings.RETURN_TYPES == ("WANCOMPILEARGS",)
    assert TorchCompileSpeedSettings.RETURN_NAMES == ("torch_compile_args",)
    assert NODE_DISPLAY_NAME_MAPPINGS == {
        "ComfyxTorchCompileSpeedSettings": "Torch Compile Speed Settings",
        "ComfyxApplyTorchCompile": "Apply Torch Compile",
        "ComfyxTorchCompileStats": "Torch Compile Stats",
    }
    assert set(NODE_CLASSES) == set(NODE_DISPLAY_NAME_MAPPINGS)


def test_wan_args_plug_into_wanvideo_and_round_trip():
    (args,) = TorchCompileSpeedSettings().settings(
        backend="inductor", fullgraph=False, mode="speed", dynamic=False, dynamo_cache_size_limit=64,
        compile_transformer_blocks_only=True, reuse_if_similar=True, experimental_ptx=False, ptx_fast_math=True,
        warmup_runs=1,
    )  # fmt: skip
    assert WAN_KEYS <= set(args)
    # WanVideoWrapper hands "mode" to torch.compile: it must be a mode torch knows
    assert args["mode"] == "default"
    assert args["force_parameter_static_shapes"] is False
    assert CompileSettings.from_wan_args(args) == CompileSettings()


def test_a_dict_from_wanvideos_own_node_is_accepted():
    wan = {"backend": "inductor", "fullgraph": False, "mode": "default", "dynamic": False,
           "dynamo_cache_size_limit": 64, "compile_transformer_blocks_only": True, "dynamo_recompile_limit": 128,
           "force_parameter_static_shapes": False, "allow_unmerged_lora_compile": False}  # fmt: skip
    assert CompileSettings.from_wan_args(wan).mode == "default"


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"mode": "fast"}, "mode must be one of default, max-autotune, max-autotune-no-cudagraphs, reduce-overhead"),
        ({"backend": "tvm"}, "backend must be one of inductor, cudagraphs"),
        ({"warmup_runs": 6}, "warmup_runs must be an integer from 0 to 5; got 6"),
        ({"warmup_runs": -1}, "warmup_runs must be an integer from 0 to 5"),
        ({"dynamo_cache_size_limit": 0}, "dynamo_cache_size_limit must be an integer from 1"),
        ({"fullgraph": "yes"}, "fullgraph must be True or False"),
        ({"backend": "cudagraphs", "mode": "speed"}, "the cudagraphs backend takes only mode 'default'"),
    ],
)
def test_bad_settings_say_what_is_wrong(change, message):
    with pytest.raises(CompileSettingsError, match=message.replace("(", r"\(").replace(")", r"\)")):
        CompileSettings(**change)


def test_settings_node_rejects_bad_settings():
    with pytest.raises(CompileSettingsError, match="warmup_runs"):
        TorchCompileSpeedSettings().settings(warmup_runs=9)


def test_speed_plan_is_inductor_without_unbounded_autotuning():
    plan = plan_for(CompileSettings())
    kwargs = plan.compile_kwargs()
    assert kwargs["backend"] == "inductor"
    assert kwargs["dynamic"] is None  # automatic dynamic: one shape-generic recompile at most
    assert not kwargs["options"].get("max_autotune") and not kwargs["options"].get("coordinate_descent_tuning")
    assert kwargs["options"]["use_fast_math"] is True
    assert "mode" not in kwargs  # torch refuses mode and options together
    assert plan_for(CompileSettings(dynamic=True)).dynamic is True


def test_named_modes_expand_to_their_options():
    options = plan_for(CompileSettings(mode="max-autotune-no-cudagraphs", ptx_fast_math=False)).options
    assert options["max_autotune"] is True and "triton.cudagraphs" not in options
    assert set(plan_for(CompileSettings(mode="default", ptx_fast_math=False)).options) == {CACHEABLE_OPTION}


@pytest.mark.parametrize("mode", ["speed", "default", "max-autotune"])
def test_inductor_plans_declare_the_sdpa_kernel_helpers_cacheable(mode):
    import torch

    plan = plan_for(CompileSettings(mode=mode))
    # the names AOTAutograd's cache looks up for the nodes torch.nn.attention.sdpa_kernel leaves in a graph
    assert plan.options[CACHEABLE_OPTION] == {
        "torch.nn.attention._backend_from_string": torch.__version__,
        "torch.nn.attention._sdpa_kernel": torch.__version__,
    }
    assert hash(plan.key()) == hash(plan_for(CompileSettings(mode=mode)).key())
    assert plan_for(CompileSettings(backend="cudagraphs", mode="default")).options == {}


def test_knobs_this_torch_lacks_are_skipped_with_one_warning(monkeypatch, caplog):
    monkeypatch.setitem(settings_module.SPEED_OPTIONS, "no_such_knob_in_any_torch", True)
    monkeypatch.setattr(settings_module, "_warned", set())
    with caplog.at_level(logging.WARNING):
        first = plan_for(CompileSettings())
        second = plan_for(CompileSettings())
    assert "no_such_knob_in_any_torch" not in first.options and first == second
    warnings = [r for r in caplog.records if "no_such_knob_in_any_torch" in r.getMessage()]
    assert len(warnings) == 1
