"""The compile settings the nodes carry, and the plan torch.compile is called with.

The settings travel between nodes as a ``WANCOMPILEARGS`` dict whose keys and values
are those WanVideoWrapper's loader reads (``mode`` is always a mode torch accepts, so
the dict plugs straight into it); comfyx's own choices ride along under
:data:`SETTINGS_KEY`.
"""

from __future__ import annotations

import dataclasses
import logging
from dataclasses import dataclass, field
from typing import Any

log = logging.getLogger(__name__)

BACKENDS = ("inductor", "cudagraphs")
TORCH_MODES = ("default", "max-autotune", "max-autotune-no-cudagraphs", "reduce-overhead")
MODES = (*TORCH_MODES, "speed")
SETTINGS_KEY = "comfyx_compile"
MAX_WARMUP_RUNS = 5

# "speed": inductor's default lowering, whole graphs of shape-specialised kernels, with the
# automatic-dynamic and block-level compile choices made elsewhere. Triton autotuning
# (max_autotune, coordinate_descent_tuning) is left out: on an H100 with 16 cores neither
# finished compiling an SDXL UNet within 200 s beyond the 140 s of the default compile
# (bench/results/compile.json, run 1), so it fails the bounded-compile requirement.
SPEED_OPTIONS: dict[str, Any] = {}
# the torch mode that compiles the same way, for WanVideoWrapper (which passes "mode" on)
SPEED_TORCH_MODE = "default"

# AOTAutograd caches a graph only if it knows every function the graph calls to be safe
# (torch/_functorch/_aot_autograd/autograd_cache.py, check_node_safe). On CUDA ComfyUI runs
# each attention inside torch.nn.attention.sdpa_kernel (comfy.ops.scaled_dot_product_attention,
# cuDNN first), which dynamo records as calls of these private helpers: unknown to that check,
# they made every compiled ComfyUI model bypass the cache ("Unsupported call_function target
# _backend_from_string"), and each restart re-traced the whole model. Caching them is sound:
# their arguments (backend names) are constants of the graph, hashed into the key, and they
# only choose the attention kernel that tracing records into the compiled code.
SDPA_CONTEXT_HELPERS = ("_backend_from_string", "_sdpa_kernel")
CACHEABLE_OPTION = "unsafe_marked_cacheable_functions"


class CompileSettingsError(ValueError):
    """A setting is out of range or unknown; the message says which and what is allowed."""


@dataclass(frozen=True)
class CompileSettings:
    """The inputs of the "Torch Compile Speed Settings" node."""

    backend: str = "inductor"
    fullgraph: bool = False
    mode: str = "speed"
    dynamic: bool = False
    dynamo_cache_size_limit: int = 64
    compile_transformer_blocks_only: bool = True
    reuse_if_similar: bool = True
    experimental_ptx: bool = False
    ptx_fast_math: bool = True
    warmup_runs: int = 1
    dynamo_recompile_limit: int = 128
    ptx_cache_dir: str = ""
    force_parameter_static_shapes: bool = False
    allow_unmerged_lora_compile: bool = False
    compile_unet_regions: bool = False
    # compiled modules keep Dynamo's traces on disk (comfyx.compile.traces): a restart loads them
    compile_trace_cache: bool = True

    def __post_init__(self) -> None:
        _check_choice("backend", self.backend, BACKENDS)
        _check_choice("mode", self.mode, MODES)
        if self.backend == "cudagraphs" and self.mode != "default":
            raise CompileSettingsError(
                f"mode {self.mode!r} is an inductor mode; the cudagraphs backend takes only mode 'default'"
            )
        for name in (
            "fullgraph",
            "dynamic",
            "compile_transformer_blocks_only",
            "reuse_if_similar",
            "experimental_ptx",
            "ptx_fast_math",
            "force_parameter_static_shapes",
            "allow_unmerged_lora_compile",
            "compile_unet_regions",
            "compile_trace_cache",
        ):
            if not isinstance(getattr(self, name), bool):
                raise CompileSettingsError(f"{name} must be True or False, got {getattr(self, name)!r}")
        _check_int("warmup_runs", self.warmup_runs, 0, MAX_WARMUP_RUNS)
        _check_int("dynamo_cache_size_limit", self.dynamo_cache_size_limit, 1, 1 << 16)
        _check_int("dynamo_recompile_limit", self.dynamo_recompile_limit, 1, 1 << 16)
        if not isinstance(self.ptx_cache_dir, str):
            raise CompileSettingsError(f"ptx_cache_dir must be a path string, got {self.ptx_cache_dir!r}")

    def to_wan_args(self) -> dict[str, Any]:
        """The ``WANCOMPILEARGS`` dict: WanVideoWrapper's keys with values torch accepts."""
        plan = plan_for(self)
        return {
            "backend": self.backend,
            "fullgraph": self.fullgraph,
            "mode": plan.wan_mode,
            "dynamic": self.dynamic,
            "dynamo_cache_size_limit": self.dynamo_cache_size_limit,
            "dynamo_recompile_limit": self.dynamo_recompile_limit,
            "compile_transformer_blocks_only": self.compile_transformer_blocks_only,
            "force_parameter_static_shapes": self.force_parameter_static_shapes,
            "allow_unmerged_lora_compile": self.allow_unmerged_lora_compile,
            SETTINGS_KEY: dataclasses.asdict(self),
        }

    @classmethod
    def from_wan_args(cls, args: dict[str, Any]) -> CompileSettings:
        """Read a ``WANCOMPILEARGS`` dict, ours or one made by WanVideoWrapper's own node."""
        if not isinstance(args, dict):
            raise CompileSettingsError(f"torch_compile_args must be a dict, got {type(args).__name__}")
        if SETTINGS_KEY in args:
            return cls(**args[SETTINGS_KEY])
        known = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in args.items() if k in known})


@dataclass(frozen=True)
class CompilePlan:
    """What torch.compile is called with, resolved from the settings."""

    backend: str
    fullgraph: bool
    dynamic: bool | None
    options: dict[str, Any] = field(default_factory=dict)
    #: the mode torch would take for the same effect (for WanVideoWrapper and the log)
    wan_mode: str = "default"

    def compile_kwargs(self) -> dict[str, Any]:
        kwargs: dict[str, Any] = {"backend": self.backend, "fullgraph": self.fullgraph, "dynamic": self.dynamic}
        if self.backend == "inductor":
            kwargs["options"] = dict(self.options)
        return kwargs

    def key(self) -> tuple:
        """Hashable identity: equal keys compile to the same code."""
        options = tuple(sorted((k, _hashable(v)) for k, v in self.options.items()))
        return (self.backend, self.fullgraph, self.dynamic, options)


def _hashable(value: Any) -> Any:
    return tuple(sorted(value.items())) if isinstance(value, dict) else value


def plan_for(settings: CompileSettings) -> CompilePlan:
    """Resolve ``settings`` (the ``speed`` preset included) against the installed torch."""
    if settings.backend == "cudagraphs":
        return CompilePlan("cudagraphs", settings.fullgraph, _dynamic(settings), {}, "default")
    if settings.mode == "speed":
        options = dict(SPEED_OPTIONS)
        wan_mode = SPEED_TORCH_MODE
    else:
        # torch.compile refuses mode and options together: expand the mode into its options
        options = _mode_options(settings.mode, settings.dynamic)
        wan_mode = settings.mode
    if settings.ptx_fast_math:
        options["use_fast_math"] = True
    options[CACHEABLE_OPTION] = cacheable_functions()
    return CompilePlan("inductor", settings.fullgraph, _dynamic(settings), supported_options(options), wan_mode)


def cacheable_functions() -> dict[str, str]:
    """The functions comfyx declares safe to AOTAutograd's cache, each keyed by torch's version."""
    import torch
    from torch.nn import attention

    helpers = [getattr(attention, name) for name in SDPA_CONTEXT_HELPERS if hasattr(attention, name)]
    # the name AOTAutograd's check looks up: the function's module and name
    return {f"{helper.__module__}.{helper.__name__}": torch.__version__ for helper in helpers}


def _dynamic(settings: CompileSettings) -> bool | None:
    # dynamic=False means torch's automatic dynamic (None), not torch's dynamic=False: the
    # first resolution compiles fully specialised and the first change of shape compiles
    # one shape-generic graph, where torch's False would recompile for every resolution
    # until the recompile limit. dynamic=True compiles shape-generic from the start.
    return True if settings.dynamic else None


def _mode_options(mode: str, dynamic: bool) -> dict[str, Any]:
    if mode == "default":
        return {}
    import torch._inductor

    return dict(torch._inductor.list_mode_options(mode, dynamic))


_warned: set[str] = set()


def supported_options(options: dict[str, Any]) -> dict[str, Any]:
    """Drop the inductor knobs the installed torch lacks, warning once for each."""
    import torch._inductor.config as inductor_config

    kept = {}
    for name, value in options.items():
        owner = inductor_config
        for part in name.split(".")[:-1]:
            owner = getattr(owner, part, None)
        if owner is not None and hasattr(owner, name.rsplit(".", 1)[-1]):
            kept[name] = value
        elif name not in _warned:
            _warned.add(name)
            log.warning("comfyx compile: this torch has no inductor option %r; skipping it", name)
    return kept


def _check_choice(name: str, value: object, allowed: tuple[str, ...]) -> None:
    if value not in allowed:
        raise CompileSettingsError(f"{name} must be one of {', '.join(allowed)}; got {value!r}")


def _check_int(name: str, value: object, low: int, high: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise CompileSettingsError(f"{name} must be an integer from {low} to {high}; got {value!r}")
