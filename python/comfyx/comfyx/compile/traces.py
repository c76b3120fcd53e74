"""Dynamo's traces of compiled models, saved so that a restart loads them instead of tracing again.

With inductor's and AOTAutograd's caches hit, a warm restart of SDXL's fp8 UNet still spent 43.5 s of
its 46.5 s first step in Dynamo, tracing the whole UNet again (H100, bench/results/e2e.md): 28% of the
cold first step. torch's ``aot_compile`` captures what a trace produces (the guarded bytecode and the
compiled graph with inductor's kernels) in a file that loads in about a second. torch's own caching
precompile cannot be that cache for ComfyUI's models (e2e.md, sixth session), and ``aot_compile``'s
default guards cannot be saved for them either: ComfyUI's layer classes are nested (its TYPE_MATCH
guards refuse to pickle them) and torch's guard pickler loses tensors' dtypes through a module's
attributes. So a saved trace keeps torch's guards on what the call passes in (each tensor's shape,
strides, dtype, device; grad mode and torch's other global state) and comfyx checks the rest itself:

- the model: its fingerprint, every submodule's class and attributes (tensors by shape, dtype and
  device, not by value), taken again at the first call of a sampling whenever ComfyUI's record of how the
  model is loaded and patched changed (:meth:`SavedTraces.new_sampling`);
- the call's other arguments (``transformer_options``' keys and values, ``control``): the signature;
- what the process runs with: torch's build and the GPU (torch checks them too), the compile plan,
  ComfyUI's command-line options that can change a model's code path, comfyx's version;
- the code: every module whose source Dynamo inlined (ComfyUI's, comfyx's, torch's) must be as it was.

The first three name the file; the sources are checked when it is loaded. A trace that does not apply
is made afresh and saved (one per fingerprint and signature, at most :data:`MAX_SIGNATURES` per class of
compiled module), and where a module cannot be traced as one graph its calls go to torch.compile's, as
before. Modules compiled one by one (Flux's blocks) share a trace per class, as they share Dynamo's code.
Weights are read at each call as with torch.compile, so LoRA and other weight patches reach them.
"""

from __future__ import annotations

import hashlib
import importlib
import inspect
import logging
import time
import types
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from comfyx import __version__
from comfyx.compile.metrics import CompileMetrics

log = logging.getLogger(__name__)

TRACE_SUFFIX = ".trace"
# a model whose calls keep changing signature (a new resolution each prompt) stops saving traces there
MAX_SIGNATURES = 8
# ComfyUI options that cannot change what a traced model (a diffusion model, a VAE decoder) computes; every
# other one is part of a trace's key
OPTIONS_NO_TRACE_SEES = frozenset({
    "listen", "port", "tls_keyfile", "tls_certfile", "enable_cors_header", "max_upload_size", "base_directory",
    "extra_model_paths_config", "output_directory", "temp_directory", "input_directory", "user_directory",
    "auto_launch", "disable_auto_launch", "dont_print_server", "quick_test_for_ci", "windows_standalone_build",
    "disable_metadata", "multi_user", "verbose", "log_stdout", "front_end_version", "front_end_root",
    "enable_compress_response_body", "database_url", "preview_method", "preview_size", "cache_classic", "cache_lru",
    "cache_none", "disable_all_custom_nodes", "whitelist_custom_nodes", "disable_api_nodes", "comfy_api_base",
    # the text encoders' storage dtype: traces are of diffusion models and VAE decoders
    "fp8_e4m3fn_text_enc", "fp8_e5m2_text_enc", "fp16_text_enc", "fp32_text_enc", "bf16_text_enc",
})
# module attributes a fingerprint leaves out: the module tree is walked anyway, and torch's
# per-instance bookkeeping says nothing about what the forward computes
FINGERPRINT_SKIPS = frozenset({"_modules", "training", "_is_full_backward_hook", "_compiled_call_impl"})


def describe(value: Any, depth: int = 0) -> Any:
    """A hashable, printable summary of ``value`` for a key: tensors by their metadata, plain values as
    they are, containers item by item, anything else by its type (functions by their qualified name)."""
    if isinstance(value, torch.Tensor):
        return ("tensor", tuple(value.shape), tuple(value.stride()), str(value.dtype), str(value.device),
                value.requires_grad)  # fmt: skip
    if value is None or isinstance(value, (bool, int, float, str, torch.dtype, torch.device)):
        return value if not isinstance(value, (torch.dtype, torch.device)) else str(value)
    if depth > 6:
        return type(value).__qualname__
    if isinstance(value, dict):
        # by key alone: repr of whole items was 30% of a Flux block call's signature (57 calls a step)
        return ("dict", tuple(sorted(((str(k), describe(v, depth + 1)) for k, v in value.items()),
                                     key=lambda item: item[0])))
    if isinstance(value, (list, tuple)):
        return (type(value).__name__, tuple(describe(v, depth + 1) for v in value))
    if isinstance(value, (types.FunctionType, types.BuiltinFunctionType, types.MethodType, type)):
        return ("code", getattr(value, "__module__", None), getattr(value, "__qualname__", repr(value)))
    return ("object", type(value).__module__, type(value).__qualname__)


def module_fingerprint(module: torch.nn.Module) -> str:
    """Every submodule's path, class and attributes (parameters and buffers by shape, dtype, device)."""
    digest = hashlib.sha256()
    for name, sub in module.named_modules(remove_duplicate=False):
        attributes = tuple((key, describe(value)) for key, value in sorted(vars(sub).items())
                           if key not in FINGERPRINT_SKIPS)  # fmt: skip
        digest.update(repr((name, type(sub).__module__, type(sub).__qualname__, attributes)).encode())
    return digest.hexdigest()


# What ComfyUI's ModelPatcher sets on a BaseModel whenever it loads, moves, partially loads (lowvram: layers
# that cast their weights, weight functions) or patches it (a new patches uuid for weight and object patches):
# the module attributes a trace bakes in change only with one of these
LOAD_STATE = ("device", "model_lowvram", "lowvram_patch_counter", "model_loaded_weight_memory",
              "current_weight_patches_uuid")


def load_state(base_model: torch.nn.Module) -> tuple:
    return tuple(str(getattr(base_model, name, None)) for name in LOAD_STATE)


def call_signature(args: tuple, kwargs: dict) -> Any:
    return describe((args, kwargs))


def process_identity(plan_key: tuple) -> str:
    """What a trace depends on besides the model and the call: torch, the GPU, the plan, ComfyUI's options."""
    device = torch.cuda.get_device_name() if torch.cuda.is_available() else "cpu"
    return repr((torch.__version__, device, __version__, plan_key, _comfyui_options()))


def _comfyui_options() -> tuple:
    try:
        from comfy.cli_args import args
    except ImportError:  # not inside ComfyUI (tests of this module alone)
        return ()
    return tuple((k, describe(v)) for k, v in sorted(vars(args).items()) if k not in OPTIONS_NO_TRACE_SEES)


def stale_sources(traced: Any) -> list[str]:
    """The modules Dynamo inlined into ``traced`` whose source is no longer what was traced."""
    from torch._dynamo.package import _hash_source

    stale = []
    for source in traced.source_info().inlined_sources:
        try:
            current = inspect.getsource(importlib.import_module(source.module))
        except (ImportError, OSError, TypeError):
            stale.append(source.module)
            continue
        if _hash_source(current) != _hash_source(source.content):
            stale.append(source.module)
    return sorted(set(stale))


def input_guards(entries: list) -> list[bool]:
    """Of Dynamo's guards, those a saved trace keeps: the portable ones (tensor metadata, global state, the
    rule of torch.compiler.keep_portable_guards_unsafe) on the call's inputs, not on the module (``self``),
    which comfyx's fingerprint checks instead. With only portable guards kept, torch also leaves the module
    out of the saved guard state (torch/_dynamo/guards.py), where its attributes would be lost."""
    return [_portable(entry) and not entry.name.startswith(("self", "type(self", "dict(type(self"))
            for entry in entries]  # fmt: skip


def _portable(entry: Any) -> bool:
    return entry.guard_type in ("GLOBAL_STATE", "SHAPE_ENV") or (entry.guard_type == "TENSOR_MATCH"
                                                                 and not entry.is_global)


class SavedTraces:
    """The saved traces of the compiled modules of one class (a UNet compiled whole; Flux's double or single
    blocks), one per fingerprint and call signature: modules alike share one trace, as they share Dynamo's
    compiled code, each called with its own weights."""

    def __init__(self, cls: type, compile_kwargs: dict[str, Any], directory: Path, identity: str,
                 metrics: CompileMetrics):
        self.metrics = metrics
        self.kwargs = compile_kwargs
        self.directory = directory
        self.identity = identity
        self.cls = cls
        self.label = cls.__name__
        self._fingerprints: dict[int, str] = {}  # id(module) -> fingerprint, for this load state
        self._load_state: Any = None
        self._state_of: Callable[[], Any] | None = None  # read at a sampling's first call
        self._functions: dict[tuple[str, Any], Callable | None] = {}

    def new_sampling(self, state_of: Callable[[], Any] | None = None) -> None:
        """A sampling starts: at its first call, take the modules' fingerprints again unless ``state_of()`` (what
        ComfyUI records of how the model is loaded and patched, :func:`load_state`; read then, as ComfyUI
        loads the model after the sampling started) is the last one's; without it, take them again. The
        fingerprint of SDXL's UNet takes 50 ms on a 2-core CPU and added 0.13-0.15 s to each prompt on an
        H100's host when taken at every sampling (bench/results/e2e.md)."""
        if state_of is None:
            self._fingerprints.clear()
            self._load_state = None
        self._state_of = state_of

    def function_for(self, module: torch.nn.Module, args: tuple, kwargs: dict) -> Callable | None:
        """The traced function for this call of ``module`` (call it with the module first), or None: use
        torch.compile's."""
        if self._state_of is not None:
            state, self._state_of = self._state_of(), None
            if state != self._load_state:
                self._fingerprints.clear()
                self._load_state = state
        fingerprint = self._fingerprints.get(id(module))
        if fingerprint is None:
            started = time.perf_counter()
            fingerprint = self._fingerprints[id(module)] = module_fingerprint(module)
            self.metrics.fingerprints_taken += 1
            log.debug("comfyx compile: a %s's fingerprint took %.1f ms", self.label,
                      (time.perf_counter() - started) * 1000)
        key = (fingerprint, call_signature(args, kwargs))
        if key not in self._functions:
            self._functions[key] = self._load_or_trace(key, module, args, kwargs)
        return self._functions[key]

    def _load_or_trace(self, key: tuple[str, Any], module: torch.nn.Module, args: tuple,
                       kwargs: dict) -> Callable | None:
        digest = hashlib.sha256(repr((self.cls.__module__, self.cls.__qualname__, *key, self.identity)).encode())
        path = self.directory / f"{digest.hexdigest()[:32]}{TRACE_SUFFIX}"
        if path.is_file():
            traced = self._load(path, module, args, kwargs)
            if traced is not None:
                return traced
        if sum(fn is not None for fn in self._functions.values()) >= MAX_SIGNATURES:
            log.info("comfyx compile: %s already has %d saved traces in this process; this call compiles without "
                     "one", self.label, MAX_SIGNATURES)
            return None
        return self._trace(path, module, args, kwargs)

    def _load(self, path: Path, module: torch.nn.Module, args: tuple, kwargs: dict) -> Callable | None:
        started = time.perf_counter()
        try:
            with self._inductor_config(), path.open("rb") as file:
                traced = torch.compiler.load_compiled_function(file)
        except Exception as error:  # noqa: BLE001 - another torch's file, or a truncated one: trace again
            log.warning("comfyx compile: ignoring the saved trace %s, which does not load: %s", path, error)
            return None
        stale = stale_sources(traced)
        if stale:
            log.info("comfyx compile: the saved trace of %s is stale (the source of %s changed); tracing again",
                     self.label, ", ".join(stale))
            return None
        if not traced.guard_check(module, *args, **kwargs):
            log.info("comfyx compile: the saved trace of %s does not fit this call; tracing again", self.label)
            return None
        self.metrics.traces_loaded += 1
        log.info("comfyx compile: %s runs the trace saved in %s (loaded and checked in %.2f s)", self.label, path,
                 time.perf_counter() - started)
        return traced

    def _trace(self, path: Path, module: torch.nn.Module, args: tuple, kwargs: dict) -> Callable | None:
        options = {**self.kwargs.get("options", {}), "guard_filter_fn": input_guards}
        kwargs_for_compile = {**self.kwargs, "fullgraph": True, "options": options}
        # torch 2.11 attaches aot_compile to a compiled function only with this flag (on by default later)
        with torch._dynamo.config.patch({"enable_aot_compile": True} if _has_aot_flag() else {}):
            compiled = torch.compile(self.cls.forward, **kwargs_for_compile)
        if not hasattr(compiled, "aot_compile"):
            log.info("comfyx compile: torch %s cannot save a trace (no aot_compile); %s compiles as before",
                     torch.__version__, self.label)
            return None
        started = time.perf_counter()
        try:
            traced = compiled.aot_compile(((module, *args), kwargs))
        except Exception as error:  # noqa: BLE001 - a graph break or an unsupported construct: torch.compile's way
            log.info("comfyx compile: %s cannot be traced as one saved graph (%s: %s); it compiles as before",
                     self.label, type(error).__name__, str(error).splitlines()[0] if str(error) else "")
            return None
        try:
            self.directory.mkdir(parents=True, exist_ok=True)
            traced.save_compiled_function(str(path))
        except Exception as error:  # noqa: BLE001 - the trace runs anyway; only the next restart loses it
            log.warning("comfyx compile: the trace of %s could not be saved to %s: %s", self.label, path, error)
        else:
            self.metrics.traces_saved += 1
            log.info("comfyx compile: traced and compiled %s as one graph in %.2f s, saved to %s", self.label,
                     time.perf_counter() - started, path)
        return traced

    def _inductor_config(self) -> Any:
        # a loaded graph replays as CUDA graphs only if inductor's flag is on while it loads (torch reads
        # torch._inductor.config.triton.cudagraphs in deserialize_bundled_cache_entry)
        import torch._inductor.config as inductor_config

        graphs = bool(self.kwargs.get("options", {}).get("triton.cudagraphs", False))
        return inductor_config.patch({"triton.cudagraphs": graphs})


def _has_aot_flag() -> bool:
    return hasattr(torch._dynamo.config, "enable_aot_compile")


class TracedModule(torch.nn.Module):
    """What a model compiled whole is replaced by for a call: its saved trace where one applies, else
    torch.compile's module. Attributes are the model's (ComfyUI reads ``dtype`` and others through it)."""

    def __init__(self, module: torch.nn.Module, fallback: torch.nn.Module, traces: SavedTraces):
        super().__init__()
        # not registered as children: the model's parameters stay the model's, listed once
        object.__setattr__(self, "_comfyx_parts", (module, fallback, traces))

    def forward(self, *args: Any, **kwargs: Any) -> Any:
        module, fallback, traces = self._comfyx_parts
        traced = traces.function_for(module, args, kwargs)
        return fallback(*args, **kwargs) if traced is None else traced(module, *args, **kwargs)

    def __getattr__(self, name: str) -> Any:
        try:
            return super().__getattr__(name)
        except AttributeError:
            return getattr(object.__getattribute__(self, "_comfyx_parts")[0], name)
