"""Start ComfyUI servers with the engine's test nodes and run prompts on them (tests and bench/engine.py)."""

from __future__ import annotations

from pathlib import Path

from comfyx.testing.server import ComfyxServer, PromptRun

CUSTOM_NODES = Path(__file__).resolve().parent / "custom_nodes"
CACHE_MODES = {"classic": [], "lru": ["--cache-lru", "10"], "none": ["--cache-none"]}


def node_pack_args(comfyui: Path, root: Path, checkpoints: Path | None = None) -> list[str]:
    """ComfyUI arguments loading its own test node pack and ours, with every writable directory under ``root``."""
    config = root / "extra_model_paths.yaml"
    testing_nodes = comfyui / "tests" / "execution" / "testing_nodes"
    text = f"comfyx_engine_tests:\n  custom_nodes: |\n    {testing_nodes}\n    {CUSTOM_NODES}\n"
    if checkpoints is not None:
        text += f"  checkpoints: {checkpoints}\n"
    config.write_text(text)
    args = ["--extra-model-paths-config", str(config)]
    for name in ("output", "temp", "input", "user"):
        (root / name).mkdir(exist_ok=True)
        args += [f"--{name}-directory", str(root / name)]
    return args


def start_server(comfyui: Path, root: Path, engine: str | None, extra_args: list[str] = (),
                 env: dict[str, str] | None = None, checkpoints: Path | None = None,
                 comfyx_args: list[str] = (), stock: bool = False) -> ComfyxServer:
    """``comfyx serve --engine ENGINE [COMFYX_ARGS] -- --cpu ...`` with the test nodes (None: no --engine),
    or with ``stock`` ComfyUI's own ``main.py --cpu ...``; returns once up."""
    root.mkdir(parents=True, exist_ok=True)
    server = ComfyxServer(comfyui, ["--cpu", *node_pack_args(comfyui, root, checkpoints), *extra_args],
                          comfyx_args=[*(["--engine", engine] if engine else []), *comfyx_args],
                          log_path=root / "server.log", env=env, stock=stock)
    server.start()
    return server





def run(server: ComfyxServer, prompt: dict, *, targets: list[str] | None = None, extra_data: dict | None = None,
        interrupt_after: float | None = None, timeout: float = 300) -> PromptRun:
    """Queue ``prompt`` and collect its websocket events (and history) until the executor is idle again."""
    return server.run_prompt(prompt, targets=targets, extra_data=extra_data or {}, interrupt_after=interrupt_after,
                             timeout=timeout)
