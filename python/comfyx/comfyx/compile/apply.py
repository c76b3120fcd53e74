"""Install a compile plan on a ModelPatcher clone through ComfyUI's APPLY_MODEL wrappers.

The wrapper swaps the compiled modules into the (shared) BaseModel only for the duration
of its own call and puts the originals back, as ComfyUI's ``TorchCompileModel`` does, so
every other clone of the model keeps running eager. Weights stay the model's own
parameters, which the compiled code reads as inputs: LoRA and other weight patches that
ModelPatcher applies reach the compiled code (the first patch can cost one recompile:
patched weights come back with requires_grad=False, which dynamo guards on).
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import weakref
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from comfyx.comfyui.calls import fresh_call_arguments
from comfyx.compile import caches
from comfyx.compile.metrics import (
    CompileMetrics,
    HostTimer,
    aot_cache_bypass_reasons,
    compile_records_since,
    compile_seconds,
    counter_delta,
    counter_snapshot,
    device_timer,
    newest_compile_record,
    recompile_reasons_since,
    synchronize,
)
from comfyx.compile.settings import CompilePlan, CompileSettings, CompileSettingsError, plan_for
from comfyx.compile.targets import WHOLE_MODEL, CompiledForwards, compile_keys, in_place
from comfyx.compile.traces import SavedTraces, TracedModule, load_state, process_identity
from comfyx.paths import CompileCaches

log = logging.getLogger(__name__)

# ComfyUI's own key (comfy_api.torch_helpers.torch_compile.COMPILE_KEY): ours and
# TorchCompileModel replace each other instead of compiling twice.
COMPILE_KEY = "torch.compile"
TORCH_COMPILE_KWARGS = "torch_compile_kwargs"

# BaseModel -> {reuse key -> CompiledModel}. Weak on the BaseModel: the entries hold the
# diffusion model's submodules, never the BaseModel, so it is freed when ComfyUI drops it.
_registry: weakref.WeakKeyDictionary[torch.nn.Module, dict[tuple, CompiledModel]] = weakref.WeakKeyDictionary()


class CompiledModel:
    """The compiled modules of one model under one plan, with their metrics."""

    def __init__(
        self,
        base_model: torch.nn.Module,
        keys: tuple[str, ...],
        settings: CompileSettings,
        plan: CompilePlan,
        dirs: CompileCaches,
    ):
        import comfy.utils

        self.settings = settings
        self.plan = plan
        self.dirs = dirs
        label = f"{type(base_model.diffusion_model).__name__} [{settings.mode}, {len(keys)} module(s)]"
        self.metrics = CompileMetrics(label)
        self.artifact_file: Path = caches.artifact_path(
            dirs, f"{type(base_model.diffusion_model).__name__}|{keys[:1]}|{len(keys)}|{plan.key()}"
        )
        self.metrics.artifacts_loaded = caches.load_artifacts(self.artifact_file)
        kwargs = plan.compile_kwargs()
        # swapped into the model for a call; or, for modules ComfyUI dispatches on by type, their
        # forward replaced for the call
        self.modules: dict[str, torch.nn.Module] = {}
        # saved Dynamo traces, one set per class of module compiled (comfyx.compile.traces)
        self.traces: dict[type, SavedTraces] = {}
        in_place_keys = []
        for key in keys:
            module = comfy.utils.get_attr(base_model, key)
            if in_place(module):
                in_place_keys.append(key)
            elif settings.compile_trace_cache and plan.backend == "inductor":
                if type(module) not in self.traces:
                    self.traces[type(module)] = SavedTraces(type(module), kwargs, dirs.traces,
                                                            process_identity(plan.key()), self.metrics)
                self.modules[key] = TracedModule(module, torch.compile(module, **kwargs), self.traces[type(module)])
            else:
                self.modules[key] = torch.compile(module, **kwargs)
        self.in_place_keys = tuple(in_place_keys)
        self.forwards = CompiledForwards(kwargs)
        self._seen: set[tuple] = set()
        # dynamo settings scoped to our calls, not set process-wide: other compiled models
        # in the process keep theirs
        self.dynamo_config = {
            "recompile_limit": settings.dynamo_cache_size_limit,
            "accumulated_recompile_limit": settings.dynamo_recompile_limit,
            "force_parameter_static_shapes": settings.force_parameter_static_shapes,
        }

    def run(self, executor: Callable, args: tuple, kwargs: dict) -> Any:
        x = args[0]
        signature = _signature(args, kwargs)
        before, mark = counter_snapshot(), newest_compile_record()
        if signature not in self._seen:
            self._seen.add(signature)
            return self._first_call_at_shape(executor, args, kwargs, x, before, mark)
        timer = device_timer(x.device)
        with HostTimer() as host, timer or contextlib.nullcontext():
            out = executor(*args, **kwargs)
        delta = counter_delta(before)
        self.metrics.add_counts(delta)
        if delta["frames_compiled"]:  # a guard failed at a known shape: a recompile
            synchronize(x.device)
            self._record_compile(_shape_text(x), host.seconds, delta, mark)
        else:
            self.metrics.record_steady(_shape_text(x), timer, host.seconds)
        return out

    def _first_call_at_shape(
        self, executor: Callable, args: tuple, kwargs: dict, x: torch.Tensor, before: dict[str, int], mark: Any
    ) -> Any:
        # experimental_ptx means "fill the Triton/PTX caches before the real step": at least one
        # warmup forward does that
        runs = max(self.settings.warmup_runs, 1 if self.settings.experimental_ptx else 0)
        synchronize(x.device)
        with HostTimer() as host, aot_cache_bypass_reasons(self.metrics.aot_cache_bypass_reasons):
            for _ in range(runs):
                warmup_args, warmup_kwargs = fresh_call_arguments(args, kwargs)
                executor(*warmup_args, **warmup_kwargs)
            out = executor(*args, **kwargs)
            synchronize(x.device)
        delta = counter_delta(before)
        self.metrics.add_counts(delta)
        self.metrics.warmup_runs_done += runs
        first = self.metrics.first_step_s is None
        if first:
            self.metrics.first_step_s = host.seconds
            self.metrics.first_step_counts = delta
        phases = self._record_compile(_shape_text(x), host.seconds, delta, mark)
        if first:
            self.metrics.first_step_compile_s = phases
        if runs:
            log.info(
                "comfyx compile: %d warmup forward(s) and the first step at %s: %.2f s (compiling included)",
                runs,
                _shape_text(x),
                host.seconds,
            )
        if self.settings.experimental_ptx:
            self.metrics.triton_kernels_cached = caches.count_triton_kernels(self.dirs.triton)
            log.info(
                "comfyx compile: experimental_ptx: warmup compiled the Triton kernels at %s; "
                "%d compiled kernels (PTX + cubin) are now cached in %s",
                _shape_text(x),
                self.metrics.triton_kernels_cached,
                self.dirs.triton,
            )
        return out

    def _record_compile(self, shape: str, seconds: float, delta: dict[str, int], mark: Any) -> dict[str, float]:
        """Log and record a step that compiled; returns its compile_seconds."""
        self.metrics.compiling_steps.append((shape, seconds, delta["frames_compiled"]))
        phases = compile_seconds(compile_records_since(mark))
        reasons = recompile_reasons_since(mark)
        self.metrics.add_recompile_reasons(reasons)
        if reasons:
            log.info("comfyx compile: %s recompiled at %s: %s", self.metrics.label, shape, "; ".join(reasons))
        if delta["frames_compiled"]:
            self.metrics.artifacts_saved = caches.save_artifacts(self.artifact_file)
        log.info(
            "comfyx compile: %s at %s: %.2f s, %d dynamo frame(s) compiled, FX graph cache %d hit(s) / %d miss(es), "
            "AOTAutograd cache %d hit(s) / %d miss(es) / %d bypass(es)",
            self.metrics.label,
            shape,
            seconds,
            delta["frames_compiled"],
            delta["fx_cache_hits"],
            delta["fx_cache_misses"],
            delta["aot_cache_hits"],
            delta["aot_cache_misses"],
            delta["aot_cache_bypasses"],
        )
        if delta["frames_compiled"] or not self.traces:  # saved traces say their own times (traces.py)
            log.info(
                "comfyx compile: %s at %s: of the %.2f s, dynamo compiled for %.2f s (AOTAutograd %.2f s, inductor "
                "%.2f s, Triton %.2f s); the rest, %.2f s, ran the model",
                self.metrics.label, shape, seconds, phases["compiling"], phases["aot_autograd"], phases["inductor"],
                phases["triton"], max(seconds - phases["compiling"], 0.0),
            )
        return phases


def apply_compile(model: Any, settings: CompileSettings, dirs: CompileCaches) -> Any:
    """A clone of ``model`` (a ComfyUI ModelPatcher) whose model calls run compiled, with their caches in ``dirs``
    (this process's, from start-up)."""
    from comfy.patcher_extension import WrappersMP

    if settings.ptx_cache_dir and Path(settings.ptx_cache_dir).expanduser().resolve() != dirs.triton.resolve():
        # Triton has one cache directory per process; a node must not move it for every other compile
        raise CompileSettingsError(
            f"ptx_cache_dir {settings.ptx_cache_dir!r}: Triton's cache directory is this process's, {dirs.triton}; "
            "choose it at start-up (--cache-dir or $COMFYX_CACHE_DIR, or $TRITON_CACHE_DIR) and leave "
            "ptx_cache_dir empty")
    plan = plan_for(settings)
    caches.ensure(dirs)
    clone = model.clone()
    base = clone.model
    keys = compile_keys(base, settings.compile_transformer_blocks_only, settings.compile_unet_regions)
    if keys == WHOLE_MODEL and settings.compile_transformer_blocks_only:
        log.info("comfyx compile: %s has no list of transformer blocks; compiling it whole",
                 type(base.diffusion_model).__name__)
    compiled = _compiled_for(base, keys, settings, plan, dirs)
    clone.remove_wrappers_with_key(WrappersMP.APPLY_MODEL, COMPILE_KEY)
    clone.add_wrapper_with_key(WrappersMP.APPLY_MODEL, COMPILE_KEY, _wrapper(compiled))
    clone.remove_wrappers_with_key(WrappersMP.OUTER_SAMPLE, COMPILE_KEY)
    clone.add_wrapper_with_key(WrappersMP.OUTER_SAMPLE, COMPILE_KEY, _around_sampling)
    clone.model_options[TORCH_COMPILE_KWARGS] = plan.compile_kwargs()
    return clone


def compiled_model_of(model: Any) -> CompiledModel | None:
    """The CompiledModel a ModelPatcher runs through, if it was made by :func:`apply_compile`."""
    from comfy.patcher_extension import WrappersMP

    for wrapper in model.get_wrappers(WrappersMP.APPLY_MODEL, COMPILE_KEY):
        compiled = getattr(wrapper, "comfyx_compiled", None)
        if compiled is not None:
            return compiled
    return None


def _compiled_for(
    base: torch.nn.Module, keys: tuple[str, ...], settings: CompileSettings, plan: CompilePlan, dirs: CompileCaches
) -> CompiledModel:
    if not settings.reuse_if_similar:
        return CompiledModel(base, keys, settings, plan, dirs)
    # everything but the reuse flag itself decides whether the compiled modules can be shared
    key = (keys, dataclasses.replace(settings, reuse_if_similar=True))
    per_model = _registry.setdefault(base, {})
    if key not in per_model:
        per_model[key] = CompiledModel(base, keys, settings, plan, dirs)
    else:
        log.info("comfyx compile: reusing the compiled modules of %s", per_model[key].metrics.label)
    return per_model[key]


def _wrapper(compiled: CompiledModel) -> Callable:
    import comfy.utils

    def comfyx_compile_wrapper(executor: Any, *args: Any, **kwargs: Any) -> Any:
        originals = {}
        replaced: dict[torch.nn.Module, Any] = {}  # module -> the forward it had in its own __dict__, or None
        try:
            for key, module in compiled.modules.items():
                originals[key] = comfy.utils.set_attr(executor.class_obj, key, module)
            for key in compiled.in_place_keys:
                module = comfy.utils.get_attr(executor.class_obj, key)
                replaced[module] = module.__dict__.get("forward")
                module.forward = compiled.forwards.for_module(module)
            with torch._dynamo.config.patch(compiled.dynamo_config):
                return compiled.run(executor, args, kwargs)
        finally:
            for key, module in originals.items():
                comfy.utils.set_attr(executor.class_obj, key, module)
            for module, forward in replaced.items():
                if forward is None:
                    del module.forward
                else:
                    module.forward = forward

    comfyx_compile_wrapper.comfyx_compiled = compiled
    return comfyx_compile_wrapper


def _around_sampling(executor: Any, *args: Any, **kwargs: Any) -> Any:
    # the guider's patcher: a compile applied after ours (e.g. TorchCompileModel) replaced our
    # APPLY_MODEL wrapper, and then there is nothing of ours to prepare or report
    compiled = compiled_model_of(executor.class_obj.model_patcher)
    if compiled is not None:
        base = executor.class_obj.model_patcher.model
        for traces in compiled.traces.values():  # the model may have been patched or moved since the last sampling
            traces.new_sampling(lambda: load_state(base))
    out = executor(*args, **kwargs)
    if compiled is not None:
        log.info("comfyx compile: %s", compiled.metrics.text())
    return out


def _signature(args: tuple, kwargs: dict) -> tuple:
    tensors = [*args, *kwargs.values()]
    return tuple((tuple(t.shape), t.dtype) for t in tensors if isinstance(t, torch.Tensor))


def _shape_text(x: torch.Tensor) -> str:
    return "x".join(str(size) for size in x.shape)
