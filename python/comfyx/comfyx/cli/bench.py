"""``comfyx bench``: stock ComfyUI and comfyx side by side on a workflow, through the HTTP API."""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from pathlib import Path

from comfyx.cli.common import EXIT_ERROR, EXIT_USAGE, say
from comfyx.comfyui import ComfyUINotFoundError, find_comfyui
from comfyx.paths import PathSettings, from_args
from comfyx.settings import tree

DEFAULT_MODELS = "bench-models"  # under comfyx's cache directory


def add_parser(commands: argparse._SubParsersAction) -> None:
    from comfyx.bench.models import ARCHS, FILE_FORMATS, flux_blocks
    from comfyx.bench.run import BUILTIN_CONFIGS, DEFAULT_CONFIGS, SYNTAX
    from comfyx.bench.workflows import WORKFLOWS

    bench = commands.add_parser(
        "bench",
        help="benchmark stock ComfyUI against comfyx on a workflow (speed, memory, energy, quality)",
        description="Start each configuration's server (stock `python main.py` or `comfyx serve`) on the same "
        "ComfyUI checkout, run a workflow through the HTTP API, and report sampling it/s, end-to-end and "
        "first-run seconds, peak VRAM, energy per image and PSNR against a reference configuration, as a "
        "table, JSON and a PNG chart. Built-in workflows run on random-weight models generated locally.",
        epilog=f"configurations: {SYNTAX}. KIND: stock or comfyx. @FORMAT: the diffusion model's file in that "
        "format instead of the bf16 one: "
        + "; ".join(f"@{name}, {fmt.what}" + ("" if fmt.stock_loads else " (comfyx only: stock is refused; "
                                                                         "generated when a configuration asks for it)")
                    for name, fmt in FILE_FORMATS.items())
        + ". +compile: ComfyUI's TorchCompileModel node. ARGS: to `python main.py`, or to `comfyx serve` with "
        "ComfyUI's after `--`. Or a built-in name: "
        + "; ".join(f"{name} = {spec}" for name, spec in BUILTIN_CONFIGS.items())
        + f". Default: {', '.join(DEFAULT_CONFIGS)}.",
        allow_abbrev=False,
    )
    bench.add_argument("--comfyui", metavar="DIR", help="ComfyUI checkout the servers run (default: as for serve)")
    bench.add_argument("--model", choices=ARCHS, help="built-in model set (generated if missing)")
    bench.add_argument("--workflow", default="txt2img", metavar="NAME|FILE",
                       help=f"{', '.join(WORKFLOWS)} (built in), or an API-format workflow file of yours "
                       "(its models must be where --extra-model-paths-config in ARGS, or ComfyUI, finds them)")
    bench.add_argument("--config", action="append", metavar="SPEC", help="a configuration (repeatable; order kept)")
    bench.add_argument("--reference", metavar="NAME", help="configuration the others are compared to (default: first)")
    bench.add_argument("--runs", type=int, default=3, help="timed runs after the first (default: %(default)s)")
    bench.add_argument("--interleave", action="store_true",
                       help="keep every configuration's server up and take the timed runs in rounds (run 1 of each, "
                            "then run 2 of each, ...), so drift in the device's speed weighs on all alike; the "
                            "device must hold every configuration's models at once")
    bench.add_argument("--shared-caches", action="store_true",
                       help="one set of compile caches for every configuration: the first to compile fills them "
                            "and the later ones start warm (for comparing configurations that compile alike, e.g. "
                            "--engine stock and bmf, without a cold compile each); no warm restarts are measured")
    bench.add_argument("--steps", type=int, help="sampler steps (default: the model's usual, e.g. 20)")
    bench.add_argument("--size", metavar="WxH", help="image size (default: the model's usual, e.g. 1024x1024)")
    bench.add_argument("--seed", type=int, default=1, help="first run's seed; run i uses seed+i (default: 1)")
    bench.add_argument("--cpu", action="store_true", help="run the servers on the CPU (ComfyUI's --cpu)")
    bench.add_argument("--models", type=Path, help=f"models directory (default: comfyx's cache dir/{DEFAULT_MODELS})")
    bench.add_argument("--flux-blocks", type=flux_blocks, default=(4, 8),
                       help="double,single blocks of the flux model (default: 4,8)")
    bench.add_argument("--out", type=Path, default=Path("comfyx-bench"), help="where the JSON and PNG go")
    bench.add_argument("--name", help="file stem of the results (default: e2e-MODEL-WORKFLOW)")
    bench.add_argument("--work", type=Path, help="keep servers' logs and outputs here (default: a temporary dir)")
    bench.add_argument("--timeout", type=float, default=1800, help="seconds a server start or a run may take")
    bench.add_argument("--profile-warm-restart", action="store_true",
                       help="sample each warm restart's server with py-spy: its stacks to "
                       "OUT/CONFIG-warm-restart.pyspy (flamegraph.pl's input) and the functions its prompt spent "
                       "its time in to OUT/CONFIG-warm-restart.txt")
    tree.add_arguments(bench, "bench")


def bench(args: argparse.Namespace) -> int:
    from comfyx.bench import report, run

    try:
        paths = from_args(args, os.environ)
        comfyui = find_comfyui(args.comfyui, paths.default_comfyui_dir).path
        plan = _plan(args, comfyui, paths)
        if plan.arch is not None:
            _ensure_models(comfyui, plan.models_dir, plan.arch, args.flux_blocks,
                           run.file_formats(plan.configs, plan.arch))
        say(f"benchmarking {plan.arch or plan.workflow}: {', '.join(c.name for c in plan.configs)}")
        stem = args.name or f"e2e-{plan.arch or Path(plan.workflow).stem}-{Path(plan.workflow).stem}"
        result = run.execute(plan, after_each=lambda partial: report.write(partial, args.out, stem))
    except (ComfyUINotFoundError, run.BenchError) as err:
        say(f"error: {err}")
        return EXIT_USAGE
    except GenerationError as err:
        say(f"error: {err}")
        return EXIT_ERROR
    files = report.write(result, args.out, stem)
    print(report.table(result))
    say("wrote " + ", ".join(str(f) for f in files))
    failed = [c["config"]["name"] for c in result["configs"] if c["error"]]
    return EXIT_ERROR if failed else 0


def _plan(args: argparse.Namespace, comfyui: Path, paths: PathSettings):
    from comfyx.bench import profile, run, workflows

    builtin = args.workflow in workflows.WORKFLOWS
    if builtin and args.model is None:
        raise run.BenchError("--model is needed for the built-in workflows")
    if not builtin and not Path(args.workflow).is_file():
        raise run.BenchError(f"--workflow {args.workflow!r} is neither a built-in workflow nor a file")
    if builtin and (args.workflow == "upscale") != args.model.startswith("esrgan"):
        raise run.BenchError("the upscale workflow runs the esrgan models, and only it does")
    if args.runs < 1:
        raise run.BenchError(f"--runs must be at least 1, not {args.runs}")
    shape = run.SHAPES[args.model] if builtin else workflows.Shape(0, 0, 0, 0.0)
    if args.size:
        try:
            width, height = (int(n) for n in args.size.lower().split("x"))
        except ValueError:
            raise run.BenchError(f"--size must look like 1024x1024, not {args.size!r}") from None
        shape = workflows.Shape(width, height, shape.steps, shape.cfg)
    if args.steps:
        shape = workflows.Shape(shape.width, shape.height, args.steps, shape.cfg)
    specs = args.config or list(run.DEFAULT_CONFIGS)
    if args.profile_warm_restart and args.shared_caches:
        raise run.BenchError("--profile-warm-restart samples the warm restarts, which --shared-caches leaves out "
                             "(a restart on caches another configuration filled): choose one")
    if args.profile_warm_restart and profile.py_spy() is None:
        raise run.BenchError("--profile-warm-restart samples the server with py-spy, found neither beside "
                             f"{sys.executable} nor on PATH "
                             "(pip install py-spy)")
    return run.Plan(
        comfyui=comfyui, models_dir=(args.models or paths.cache_dir / DEFAULT_MODELS).resolve(),
        arch=args.model if builtin else None, workflow=args.workflow if builtin else str(Path(args.workflow).resolve()),
        configs=[run.Config.parse(spec) for spec in specs], shape=shape, runs=args.runs, seed=args.seed,
        cpu=args.cpu, reference=args.reference, work=args.work, timeout=args.timeout, interleave=args.interleave,
        profile_dir=args.out.resolve() if args.profile_warm_restart else None, shared_caches=args.shared_caches,
    )


class GenerationError(RuntimeError):
    """Generating the benchmark's models failed; the message carries the generator's output."""


def _ensure_models(comfyui: Path, models: Path, arch: str, blocks: tuple[int, int], formats: tuple[str, ...]) -> None:
    """Generate ``arch``'s model set unless ``models`` holds it, its diffusion model in ``formats`` too (the
    on-demand ones only when a configuration runs them: quantizing a large model takes time)."""
    from comfyx.bench.models import FILE_FORMATS, in_manifest

    if in_manifest(models, arch, blocks, formats):
        return
    extra = [fmt for fmt in formats if FILE_FORMATS[fmt].on_demand]
    say(f"generating the {arch} models in {models} (random weights, once"
        + (f"; the diffusion model as {', '.join(extra)} too" if extra else "") + ")")
    command = [sys.executable, "-m", "comfyx.bench.models", "--comfyui", str(comfyui), "--out", str(models),
               "--flux-blocks", "{},{}".format(*blocks), *(f"--file-format={fmt}" for fmt in extra), arch]
    if subprocess.run(command, check=False).returncode != 0:
        raise GenerationError(f"generating the {arch} models failed: {' '.join(command)}")
