"""``comfyx bench``: the same workflow on stock ComfyUI and on comfyx, side by side, through the HTTP API.

For each configuration, one after the other on the same ComfyUI checkout and device, the bench
starts the server (stock ``python main.py`` or ``comfyx serve``) with fresh compile caches,
runs the workflow once (the first run: model loading and any compiling included), then
``runs`` more times with other seeds, and, for configurations that compile, restarts the server
on its now warm caches and runs once more. Per configuration it reports:

- sampling it/s: the sampler's progress events, (events − 1) / (last − first);
- end to end: ``POST /prompt`` until the executor is idle and the history is in (median);
- first run: the same for the first run; first step: from the sampler's start to its first
  progress event (model loading, compiling and one step);
- peak VRAM: the server process's device memory (NVML, 20 ms samples), over all runs, within
  the first run's sampler window (the model and its activations, before any VAE decode), and per
  node of each run (from its ``executing`` event to the next), with the node in whose window the first
  run reached its peak;
- energy per image: the GPU's energy counter across a run, per image (NVML);
- quality: PSNR of the first timed run's image against the reference configuration's
  image of the same seed, and whether the PNG bytes are identical.

Figures a machine cannot give (no NVML, no GPU) are None, with the reason in the JSON.
"""

from __future__ import annotations

import dataclasses
import io
import json
import platform
import re
import shlex
import statistics
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from comfyx.bench import profile, workflows
from comfyx.bench.device import DeviceMonitor, nvml_unavailable_reason, peak_rss_mib
from comfyx.bench.models import FILE_FORMATS, has_diffusion_model
from comfyx.bench.server import ComfyUIServer, PromptRun

KINDS = ("stock", "comfyx")
BUILTIN_CONFIGS = {
    "stock": "stock",
    "stock-fp8": "stock@fp8 --fast fp8_matrix_mult",
    "stock-best": "stock@fp8+compile --fast fp8_matrix_mult",
    "comfyx": "comfyx",
    "comfyx-fast": "comfyx --fast",
    "comfyx-fast-fp8file": "comfyx@fp8 --fast",
}
DEFAULT_CONFIGS = ("stock", "stock-best", "comfyx-fast")
# Per architecture: the workflow's size, steps and cfg (the real models' usual settings on a GPU;
# the tiny ones small enough for a CPU).
SHAPES = {
    "sd15-tiny": workflows.Shape(64, 64, 4, 7.0),
    "sdxl-tiny": workflows.Shape(64, 64, 2, 7.0),
    "sdxl": workflows.Shape(1024, 1024, 20, 7.0),
    "flux-tiny": workflows.Shape(64, 64, 2, 1.0),
    "flux": workflows.Shape(1024, 1024, 20, 1.0),
    "esrgan-tiny": workflows.Shape(64, 64, 1, 1.0),
    "esrgan": workflows.Shape(512, 512, 1, 1.0),
}


class BenchError(RuntimeError):
    """The benchmark cannot run as asked; the message says why."""


SYNTAX = f"NAME: [VAR=VALUE ...] KIND[@{'|@'.join(FILE_FORMATS)}][+compile] [ARGS]"
ENV_ASSIGNMENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]*=")


@dataclass(frozen=True)
class Config:
    """``NAME: [VAR=VALUE ...] KIND[@FORMAT][+compile] ARGS``: which server, in which environment, which model
    files, ComfyUI's compile node or not.

    ``VAR=VALUE`` words before the kind are set in the server's environment, as a shell would (for
    settings only an environment variable reaches, such as torch's ``PYTORCH_CUDA_ALLOC_CONF``).

    ``@FORMAT`` (models.FILE_FORMATS: fp8, nvfp4, mxfp8) runs the diffusion model's file in that format
    instead of the bf16 one; stock ComfyUI v0.3.64 loads the fp8 file but not the comfy_quant NVFP4 / MXFP8
    ones, so ``stock@nvfp4`` is refused. ARGS go to ``python main.py`` for stock and to ``comfyx serve``
    for comfyx (ComfyUI's own options after ``--`` there).
    """

    name: str
    kind: str
    file_format: str | None = None  # None: the bf16 files
    compile_node: bool = False
    args: tuple[str, ...] = ()
    env: tuple[tuple[str, str], ...] = ()

    @classmethod
    def parse(cls, spec: str) -> Config:
        if ":" not in spec and spec in BUILTIN_CONFIGS:
            spec = f"{spec}: {BUILTIN_CONFIGS[spec]}"
        name, sep, rest = spec.partition(":")
        words = shlex.split(rest)
        if not sep or not name.strip() or not words:
            raise BenchError(f"configuration {spec!r}: write {SYNTAX} or one of {', '.join(BUILTIN_CONFIGS)}")
        name = name.strip()
        env = []
        while words and ENV_ASSIGNMENT.match(words[0]):
            var, _, value = words.pop(0).partition("=")
            env.append((var, value))
        if not words:
            raise BenchError(f"configuration {name!r}: no kind after its environment (write {SYNTAX})")
        kind, compile_node = words[0].removesuffix("+compile"), words[0].endswith("+compile")
        kind, at, file_format = kind.partition("@")
        if kind not in KINDS:
            raise BenchError(f"configuration {name!r}: kind must be one of {', '.join(KINDS)}, not {kind!r}")
        if at and file_format not in FILE_FORMATS:
            raise BenchError(f"configuration {name!r}: @{file_format} is no model file format; the formats are "
                             f"{', '.join('@' + fmt for fmt in FILE_FORMATS)} (write {SYNTAX})")
        if kind == "stock" and at and not FILE_FORMATS[file_format].stock_loads:
            raise BenchError(f"configuration {name!r}: stock ComfyUI v0.3.64 cannot load the {file_format} file "
                             f"(its comfy_quant {file_format} layers are newer ComfyUI's format): run it as "
                             f"comfyx@{file_format}")
        return cls(name, kind, file_format if at else None, compile_node, tuple(words[1:]), tuple(env))

    @property
    def compiles(self) -> bool:
        """ComfyUI's compile node, or comfyx's compile (its --fast or --compile; ComfyUI's --fast is another flag)."""
        ours = _split(self.args)[0] if self.kind == "comfyx" else []
        comfyx_compiles = "--compile" in ours or ("--fast" in ours and "--no-compile" not in ours)
        return self.compile_node or comfyx_compiles

    def describe(self) -> str:
        variant = (f"@{self.file_format}" if self.file_format else "") + ("+compile" if self.compile_node else "")
        return shlex.join([*(f"{var}={value}" for var, value in self.env), f"{self.kind}{variant}", *self.args])


@dataclass
class RunResult:
    seed: int
    end_to_end_s: float
    sampling_s: float | None = None
    first_step_s: float | None = None
    it_per_s: float | None = None
    steps: int = 0
    peak_vram_mib: float | None = None
    sampling_peak_vram_mib: float | None = None
    node_peak_vram_mib: dict[str, float] = field(default_factory=dict)  # "node id ClassType" -> MiB
    peak_vram_node: str | None = None  # the node in whose window the run's peak was first reached
    energy_j: float | None = None
    error: str | None = None


@dataclass
class ConfigResult:
    config: Config
    server_start_s: float | None = None
    first: RunResult | None = None
    runs: list[RunResult] = field(default_factory=list)
    warm_restart: RunResult | None = None
    warm_server_start_s: float | None = None
    peak_rss_mib: float | None = None
    psnr_db: float | None = None  # None when the pixels are identical (identical_pixels) or there is no image
    identical_pixels: bool | None = None
    identical_bytes: bool | None = None
    log_lines: list[str] = field(default_factory=list)
    error: str | None = None

    def median(self, name: str) -> float | None:
        values = [getattr(r, name) for r in self.runs if getattr(r, name) is not None and r.error is None]
        return round(statistics.median(values), 4) if values else None

    def summary(self) -> dict[str, Any]:
        return {
            "it_per_s": self.median("it_per_s"),
            "end_to_end_s": self.median("end_to_end_s"),
            "sampling_s": self.median("sampling_s"),
            "first_run_s": None if self.first is None else round(self.first.end_to_end_s, 3),
            "first_step_s": None if self.first is None else self.first.first_step_s,
            "warm_restart_first_step_s": None if self.warm_restart is None else self.warm_restart.first_step_s,
            "peak_vram_mib": max((r.peak_vram_mib for r in [self.first, *self.runs]
                                  if r is not None and r.peak_vram_mib is not None), default=None),
            # the first run's sampler window: the model and its activations, before a VAE decode has
            # left its blocks in the allocator's cache (NVML sees what the process holds, not uses)
            "sampling_peak_vram_mib": None if self.first is None else self.first.sampling_peak_vram_mib,
            # the first run's: memory rises from nothing there, where a timed run starts at the level the
            # allocator kept from the runs before
            "peak_vram_node": None if self.first is None else self.first.peak_vram_node,
            "energy_j_per_image": self.median("energy_j"),
            "psnr_db": self.psnr_db,
            "identical_pixels": self.identical_pixels,
            "identical_bytes": self.identical_bytes,
            "peak_rss_mib": self.peak_rss_mib,
        }


@dataclass
class Plan:
    """What to run: one model set's workflow under each configuration."""

    comfyui: Path
    models_dir: Path
    arch: str | None  # None: the user's own workflow
    workflow: str  # a built-in name, or a path to an API-format JSON file
    configs: list[Config]
    shape: workflows.Shape
    runs: int = 3
    seed: int = 1
    cpu: bool = False
    reference: str | None = None
    work: Path | None = None
    timeout: float = 1800.0
    interleave: bool = False  # timed runs round the configurations, every server up at once
    profile_dir: Path | None = None  # the warm restarts sampled with py-spy, their stacks written here
    # one set of persistent caches for every configuration: the first to compile fills them, the later ones
    # start warm (for comparing what compiles alike, e.g. engines, without a cold compile each)
    shared_caches: bool = False


def file_formats(configs: list[Config], arch: str) -> tuple[str, ...]:
    """The diffusion model's file formats ``configs`` run on ``arch``'s model set (none for an upscaler's)."""
    if not has_diffusion_model(arch):
        return ()
    return tuple(sorted({c.file_format for c in configs if c.file_format is not None}))


def _say(message: str) -> None:
    print(f"comfyx bench: {message}", flush=True)


def _input_png(width: int, height: int, seed: int) -> bytes:
    """A test picture for img2img and upscaling: gradients and a disc placed by ``seed`` (each run's
    picture differs, so ComfyUI's cache cannot serve a run of a workflow without a seed)."""
    import numpy as np
    from PIL import Image

    y, x = np.mgrid[0:height, 0:width]
    cx, cy = width * (0.3 + 0.4 * ((seed * 37) % 11) / 10), height * (0.3 + 0.4 * ((seed * 53) % 7) / 6)
    disc = ((x - cx) ** 2 + (y - cy) ** 2) < (min(width, height) / 4) ** 2
    rgb = np.stack([x * 255 // max(width - 1, 1), y * 255 // max(height - 1, 1), disc * 200], axis=-1)
    buffer = io.BytesIO()
    Image.fromarray(rgb.astype(np.uint8)).save(buffer, format="PNG")
    return buffer.getvalue()


def _prompt(plan: Plan, config: Config, models: dict | None, seed: int, input_image: str | None) -> dict:
    if plan.arch is None:
        if config.file_format or config.compile_node:
            raise BenchError(f"configuration {config.name!r}: @FORMAT and +compile change the built-in workflows' "
                             "model files and nodes; a workflow of your own is run as written")
        return workflows.with_seed(json.loads(Path(plan.workflow).read_text()), seed)
    return workflows.build(plan.workflow, plan.arch, models, file_format=config.file_format,
                           compile_node=config.compile_node, shape=plan.shape, seed=seed, input_image=input_image)


def _sampler_node(run: PromptRun) -> str | None:
    """The node that reported progress (the sampler; for a user's workflow, the one with the most)."""
    counts: dict[str, int] = {}
    for _, data in run.timed("progress"):
        counts[str(data.get("node"))] = counts.get(str(data.get("node")), 0) + 1
    if workflows.SAMPLER_NODE in counts:
        return workflows.SAMPLER_NODE
    return max(counts, key=counts.get) if counts else None


def measure(
    run: PromptRun, seed: int, monitor: DeviceMonitor | None, energy: tuple[int | None, int | None],
    prompt: dict | None = None,
) -> RunResult:
    """One run's figures from its timed websocket events and the device samples."""
    result = RunResult(seed=seed, end_to_end_s=round(run.end_to_end, 4), error=run.error())
    if run.first("execution_error") is None and not run.timed("executed") and not run.timed("progress"):
        cached = run.first("execution_cached") or {}
        if cached.get("nodes"):
            result.error = ("every node was served from ComfyUI's cache (the workflow has no seed input that "
                            "differs between runs): nothing to time")
    node = _sampler_node(run) or workflows.SAMPLER_NODE
    starts = [(t, data.get("node")) for t, data in run.timed("executing")]
    begin = next((t for t, n in starts if n == node), None)
    end = next((t for t, n in starts if begin is not None and t > begin), None)
    progress = [t for t, data in run.timed("progress") if str(data.get("node")) == node]
    if begin is not None and end is not None:
        result.sampling_s = round(end - begin, 4)
    if begin is not None and progress:
        result.first_step_s = round(progress[0] - begin, 4)
    result.steps = len(progress)
    if len(progress) > 1:
        result.it_per_s = round((len(progress) - 1) / (progress[-1] - progress[0]), 4)
    if monitor is not None and monitor.available:
        result.peak_vram_mib = monitor.peak_mib(run.posted, run.finished)
        if begin is not None and end is not None:
            result.sampling_peak_vram_mib = monitor.peak_mib(begin, end)
        windows = _node_windows(starts, run.finished, prompt or {})
        result.node_peak_vram_mib = monitor.peaks_mib(windows)
        result.peak_vram_node = monitor.first_at_peak(windows)
    if None not in energy:
        result.energy_j = round((energy[1] - energy[0]) / 1000, 2)
    return result


def _node_windows(starts: list[tuple[float, Any]], finished: float, prompt: dict) -> list[tuple[str, float, float]]:
    """Each executing node's window, from its ``executing`` event to the next event of the kind (or the run's
    end), named "id ClassType"."""
    windows = []
    for (start, node), (end, _) in zip(starts, [*starts[1:], (finished, None)], strict=True):
        if node is not None:
            windows.append((f"{node} {prompt.get(str(node), {}).get('class_type', '?')}", start, end))
    return windows


def _server(plan: Plan, config: Config, work: Path, tag: str, wrapper: list[str] | None = None) -> ComfyUIServer:
    base = work / f"{config.name}-base"  # ComfyUI's user, input and custom-node dirs: not in the checkout
    (base / "custom_nodes").mkdir(parents=True, exist_ok=True)
    comfyui_args = ["--base-directory", str(base),
                    "--extra-model-paths-config", str(plan.models_dir / "extra_model_paths.yaml"),
                    "--output-directory", str(work / f"{config.name}-out")]
    if plan.cpu:
        comfyui_args.append("--cpu")
    if _frontend_missing():
        (work / "no-frontend").mkdir(exist_ok=True)
        comfyui_args += ["--front-end-root", str(work / "no-frontend")]
    # fresh per configuration, unless shared; the warm restart reuses them
    caches = work / ("shared-caches" if plan.shared_caches else f"{config.name}-caches")
    env = {"TORCHINDUCTOR_CACHE_DIR": str(caches / "inductor"), "TRITON_CACHE_DIR": str(caches / "triton"),
           "COMFYX_CACHE_DIR": str(caches / "comfyx"), "PYTHONUNBUFFERED": "1", **dict(config.env)}
    log_path = work / f"{config.name}-{tag}.log"
    if config.kind == "stock":
        return ComfyUIServer.stock(plan.comfyui, [*config.args, *comfyui_args], log_path=log_path, env=env,
                                   wrapper=wrapper)
    ours, _, theirs = _split(config.args)
    return ComfyUIServer.comfyx(plan.comfyui, ours, [*theirs, *comfyui_args], log_path=log_path, env=env,
                                wrapper=wrapper)


def _split(args: tuple[str, ...]) -> tuple[list[str], str, list[str]]:
    if "--" in args:
        cut = args.index("--")
        return list(args[:cut]), "--", list(args[cut + 1:])
    return list(args), "", []


def _frontend_missing() -> bool:
    import importlib.util

    return importlib.util.find_spec("comfyui_frontend_package") is None


def _interesting_log_lines(server: ComfyUIServer) -> list[str]:
    keep = ("model weight dtype", "comfyx", "Using scaled fp8", "fp8", "loaded completely", "Traceback", "Error")
    text = server.log_path.read_text(errors="replace") if server.log_path.exists() else ""
    seen: list[str] = []
    for line in text.splitlines():
        if any(k in line for k in keep) and line not in seen and not line.startswith("INFO:"):
            seen.append(line[:300])
    return seen[:80]


@dataclass
class LiveConfig:
    """One configuration's server while its runs go on, and what they gave."""

    result: ConfigResult
    server: ComfyUIServer
    monitor: DeviceMonitor | None = None
    image: bytes | None = None  # the PNG of the quality seed (run 1)


def _start(plan: Plan, config: Config, work: Path) -> LiveConfig:
    """Start ``config``'s server on fresh caches (if it cannot start, its result holds the error)."""
    live = LiveConfig(ConfigResult(config), _server(plan, config, work, "cold"))
    try:
        live.server.start(timeout=plan.timeout)
    except Exception as err:  # noqa: BLE001 - one configuration failing must not lose the others' figures
        _fail(live, err)
        return live
    live.result.server_start_s = round(live.server.started_in, 2)
    _say(f"[{config.name}] server up in {live.server.started_in:.1f} s ({config.describe()})")
    live.monitor = DeviceMonitor(live.server.pid)
    live.monitor.start()
    return live


def _run(plan: Plan, models: dict | None, live: LiveConfig, index: int) -> None:
    """Run ``index`` (0: the first run) of a started configuration; a failure stops its server and sets
    its result's error."""
    config, result, server, monitor = live.result.config, live.result, live.server, live.monitor
    seed = plan.seed + index
    try:
        input_image = _upload_input(plan, server, seed)
        energy_before = monitor.energy_mj()
        prompt = _prompt(plan, config, models, seed, input_image)
        run = server.run_prompt(prompt, timeout=plan.timeout)
        measured = measure(run, seed, monitor, (energy_before, monitor.energy_mj()), prompt)
        if index == 1 and not measured.error:
            live.image = _output_png(server, run)
    except Exception as err:  # noqa: BLE001
        _fail(live, err)
        return
    label = "first run" if index == 0 else f"run {index}/{plan.runs}"
    rate = f", {measured.it_per_s:.2f} it/s" if measured.it_per_s else ""
    _say(f"[{config.name}] {label}: {measured.end_to_end_s:.2f} s{rate}"
         + (f" ERROR {measured.error}" if measured.error else ""))
    if index == 0:
        result.first = measured
    else:
        result.runs.append(measured)
    if measured.error:
        result.error = measured.error
        _stop(live)


def _fail(live: LiveConfig, err: Exception) -> None:
    live.result.error = f"{type(err).__name__}: {err}"
    _say(f"[{live.result.config.name}] failed: {live.result.error.splitlines()[0]}")
    _stop(live)


def _stop(live: LiveConfig) -> None:
    if live.monitor is not None:
        live.monitor.stop()
        live.result.peak_rss_mib = peak_rss_mib(live.server.pid)
        live.monitor = None
    live.server.stop()
    live.result.log_lines = _interesting_log_lines(live.server)


def _warm_restart_if_compiled(plan: Plan, models: dict | None, work: Path, live: LiveConfig) -> None:
    """For comfyx's compiling configurations that ran without error, the warm restart (server stopped)."""
    config, result = live.result.config, live.result
    if plan.shared_caches:  # a restart on caches other configurations filled says nothing of this one's
        return
    if config.kind == "comfyx" and config.compiles and result.error is None:  # comfyx's persistent caches
        _warm_restart(plan, config, models, work, result)


def run_config(plan: Plan, config: Config, models: dict | None, work: Path) -> LiveConfig:
    """Every run of one configuration: its results and the PNG of the quality seed."""
    live = _start(plan, config, work)
    for index in range(plan.runs + 1):
        if live.result.error:
            return live
        _run(plan, models, live, index)
    _stop(live)
    _warm_restart_if_compiled(plan, models, work, live)
    return live


def run_interleaved(plan: Plan, models: dict | None, work: Path) -> list[LiveConfig]:
    """Every configuration's server started (and its first run done) one after the other, then kept up
    while the timed runs go round the configurations: run 1 of each, run 2 of each, ... A device whose
    speed drifts (clocks, temperature, power) then weighs on every configuration alike. The servers
    hold their models at once: the device needs room for all of them."""
    lives = []
    for config in plan.configs:
        lives.append(_start(plan, config, work))
        if not lives[-1].result.error:
            _run(plan, models, lives[-1], 0)
    for index in range(1, plan.runs + 1):
        for live in lives:
            if not live.result.error:
                _run(plan, models, live, index)
    running = [live for live in lives if not live.result.error]
    for live in running:  # every server down before the warm restarts
        _stop(live)
    for live in running:
        _warm_restart_if_compiled(plan, models, work, live)
    return lives


def _warm_restart(plan: Plan, config: Config, models: dict | None, work: Path, result: ConfigResult) -> None:
    """The same server once more, on the caches its first start filled: its first run (sampled with
    py-spy where the plan asks for a profile)."""
    stacks = None if plan.profile_dir is None else plan.profile_dir / f"{config.name}-warm-restart.pyspy"
    wrapper = None
    if stacks is not None:
        stacks.parent.mkdir(parents=True, exist_ok=True)
        wrapper = profile.wrapper(profile.py_spy() or "py-spy", stacks)
    server = _server(plan, config, work, "warm", wrapper)
    try:
        server.start(timeout=plan.timeout)
        result.warm_server_start_s = round(server.started_in, 2)
        input_image = _upload_input(plan, server, plan.seed)
        run = server.run_prompt(_prompt(plan, config, models, plan.seed, input_image), timeout=plan.timeout)
        result.warm_restart = measure(run, plan.seed, None, (None, None))
        _say(f"[{config.name}] warm restart: first run {result.warm_restart.end_to_end_s:.2f} s, first step "
             f"{result.warm_restart.first_step_s} s (cold: {result.first.first_step_s} s)")
    except Exception as err:  # noqa: BLE001
        _say(f"[{config.name}] warm restart failed: {err}")
    finally:
        server.stop()
    if stacks is not None and stacks.exists():
        top = stacks.with_suffix(".txt")
        log = server.log_path.read_text(errors="replace") if server.log_path.exists() else ""
        top.write_text(profile.summary(stacks.read_text(), reads=profile.failed_reads(log)))
        _say(f"[{config.name}] warm restart's stacks: {stacks}; where its prompt's time went: {top}")


def _upload_input(plan: Plan, server: ComfyUIServer, seed: int) -> str | None:
    if plan.workflow not in ("img2img", "upscale"):
        return None
    return server.upload_image(f"comfyx-bench-input-{seed}.png", _input_png(plan.shape.width, plan.shape.height, seed))


def _output_png(server: ComfyUIServer, run: PromptRun) -> bytes | None:
    for output in run.history.get("outputs", {}).values():
        for image in output.get("images", []):
            return server.output_bytes(image)
    return None


def _quality(results: list[ConfigResult], images: dict[str, bytes | None], reference: str) -> None:
    from comfyx.bench.quality import psnr_png

    ref = images.get(reference)
    for result in results:
        image = images.get(result.config.name)
        if ref is None or image is None:
            continue
        result.identical_bytes = image == ref
        value = psnr_png(ref, image)
        result.identical_pixels = value == float("inf")
        result.psnr_db = None if result.identical_pixels else value


def environment() -> dict[str, Any]:
    """What ran the benchmark: machine, Python, torch and its device (the servers use this interpreter)."""
    env: dict[str, Any] = {"platform": platform.platform(), "python": platform.python_version(),
                           "processor": platform.processor() or platform.machine()}
    try:
        import torch

        env["torch"] = torch.__version__
        if torch.cuda.is_available():
            env["device"] = torch.cuda.get_device_name(0)
            env["capability"] = "sm_{}{}".format(*torch.cuda.get_device_capability(0))
        else:
            env["device"] = "cpu"
    except ImportError:
        env["torch"] = None
    env["comfyui_frontend_package"] = not _frontend_missing()
    return env


def execute(plan: Plan, after_each: Any = None) -> dict[str, Any]:
    """Run every configuration of ``plan``; returns the JSON-ready report.

    ``after_each(report)``, if given, gets the report of the configurations run so far after
    each one (a long run interrupted keeps what it measured).
    """
    if not plan.configs:
        raise BenchError("no configuration to run")
    names = [c.name for c in plan.configs]
    if len(set(names)) != len(names):
        raise BenchError(f"configuration names must differ: {names}")
    reference = plan.reference or names[0]
    if reference not in names:
        raise BenchError(f"reference {reference!r} is none of the configurations {names}")
    manifest_path = plan.models_dir / "manifest.json"
    models = None
    if plan.arch is not None:
        manifest = json.loads(manifest_path.read_text()) if manifest_path.exists() else {}
        generate = ["python -m comfyx.bench.models", f"--comfyui {plan.comfyui}", f"--out {plan.models_dir}"]
        formats = file_formats(plan.configs, plan.arch)
        if plan.arch not in manifest:
            command = [*generate, *(f"--file-format {fmt}" for fmt in formats), plan.arch]
            raise BenchError(f"{plan.models_dir} has no {plan.arch} models: generate them with `{' '.join(command)}`")
        models = manifest[plan.arch]
        missing = [fmt for fmt in formats if fmt not in models.get("variants", {})]
        if missing:
            command = [*generate, *(f"--file-format {fmt}" for fmt in missing), plan.arch]
            raise BenchError(f"{plan.models_dir} has no {', '.join(missing)} file of the {plan.arch} diffusion "
                             f"model: generate it with `{' '.join(command)}`")
    started = time.monotonic()
    owned = None if plan.work is not None else tempfile.TemporaryDirectory(prefix="comfyx-bench-")
    work = plan.work or Path(owned.name)
    work.mkdir(parents=True, exist_ok=True)
    results: list[ConfigResult] = []
    images: dict[str, bytes | None] = {}
    try:
        if plan.interleave:  # every configuration's figures come at the end
            for live in run_interleaved(plan, models, work):
                results.append(live.result)
                images[live.result.config.name] = live.image
        else:
            for config in plan.configs:
                live = run_config(plan, config, models, work)
                results.append(live.result)
                images[config.name] = live.image
                if after_each is not None and reference in images:
                    _quality(results, images, reference)
                    after_each(report(plan, results, reference, models, round(time.monotonic() - started, 1)))
        _quality(results, images, reference)
    finally:
        if owned is not None:
            owned.cleanup()
    return report(plan, results, reference, models, round(time.monotonic() - started, 1))


def report(plan: Plan, results: list[ConfigResult], reference: str, models: dict | None, seconds: float) -> dict:
    by_name = {r.config.name: r.summary() for r in results}
    ref = by_name[reference]
    for summary in by_name.values():
        summary["speedup_it_per_s"] = _ratio(summary["it_per_s"], ref["it_per_s"])
        summary["speedup_end_to_end"] = _ratio(ref["end_to_end_s"], summary["end_to_end_s"])
        summary["vram_ratio"] = _ratio(summary["peak_vram_mib"], ref["peak_vram_mib"])
        summary["sampling_vram_ratio"] = _ratio(summary["sampling_peak_vram_mib"], ref["sampling_peak_vram_mib"])
        if summary["first_step_s"] and summary["warm_restart_first_step_s"]:
            summary["warm_first_step_ratio"] = round(summary["warm_restart_first_step_s"] / summary["first_step_s"], 3)
    gpu_reason = nvml_unavailable_reason()
    return {
        "comfyx_bench": 1,
        "arch": plan.arch,
        "workflow": plan.workflow,
        "shape": dataclasses.asdict(plan.shape),
        "runs": plan.runs,
        "interleaved": plan.interleave,
        "shared_caches": plan.shared_caches,
        "reference": reference,
        "models": models,
        "environment": environment(),
        "gpu_figures": "NVML" if gpu_reason is None else f"n/a: {gpu_reason}",
        "seconds": seconds,
        "summary": by_name,
        "configs": [dataclasses.asdict(r) for r in results],
    }


def _ratio(a: float | None, b: float | None) -> float | None:
    return round(a / b, 3) if a and b else None
