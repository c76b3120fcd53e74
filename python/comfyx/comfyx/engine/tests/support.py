"""Start ComfyUI servers with the engine's test nodes and run prompts on them (tests and bench/engine.py)."""

from __future__ import annotations

import json
import time
import urllib.request
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import websocket

from comfyx.testing.server import ComfyxServer, PromptRejectedError, PromptRun, ServerError

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


@dataclass
class TimedRun(PromptRun):
    """A prompt's events with the time (``time.perf_counter``) each one arrived.

    ``posted`` is just before ``POST /prompt`` (the websocket already open, as in a browser
    tab); ``finished`` is once the executor's idle event has arrived and the history has
    been read back.
    """

    times: list[float] = field(default_factory=list)
    posted: float = 0.0
    finished: float = 0.0

    @property
    def end_to_end(self) -> float:
        return self.finished - self.posted


def run(server: ComfyxServer, prompt: dict, *, targets: list[str] | None = None, extra_data: dict | None = None,
        interrupt_after: float | None = None, timeout: float = 300) -> TimedRun:
    """Queue ``prompt`` and collect its websocket events (and history) until the executor is idle again.

    Text frames are decoded (and so checked) as UTF-8 by ``json.loads``; websocket-client's own
    pure-Python UTF-8 check costs about 0.5 µs a byte and is skipped.
    """
    client_id = uuid.uuid4().hex
    ws = websocket.create_connection(f"ws://127.0.0.1:{server.port}/ws?clientId={client_id}", timeout=timeout,
                                     skip_utf8_validation=True)
    try:
        payload = {"prompt": prompt, "client_id": client_id, "extra_data": extra_data or {}}
        if targets is not None:
            payload["partial_execution_targets"] = targets
        posted = time.perf_counter()
        status, body = server.post_json("/prompt", payload)
        if status != 200:
            raise PromptRejectedError(status, body)
        result = TimedRun(body["prompt_id"], posted=posted)
        started = time.monotonic()
        interrupted = False
        deadline = started + timeout
        while time.monotonic() < deadline:
            if interrupt_after is not None and not interrupted:
                ws.settimeout(max(0.01, started + interrupt_after - time.monotonic()))
            try:
                message = ws.recv()
            except websocket.WebSocketTimeoutException:
                if interrupt_after is None or interrupted:
                    raise
                server.post_json("/interrupt", {})
                interrupted = True
                ws.settimeout(timeout)
                continue
            if not isinstance(message, str):
                continue
            event = json.loads(message)
            data = event.get("data", {})
            if not isinstance(data, dict) or data.get("prompt_id") != result.prompt_id:
                continue
            result.events.append((event["type"], data))
            result.times.append(time.perf_counter())
            if event["type"] == "executing" and data.get("node") is None:
                break
        else:
            raise ServerError(f"prompt {result.prompt_id} did not finish within {timeout:.0f}s:\n{server.log_tail()}")
    finally:
        ws.close()
    with urllib.request.urlopen(f"{server.url}/history/{result.prompt_id}", timeout=30) as response:
        result.history = json.loads(response.read()).get(result.prompt_id, {})
    result.finished = time.perf_counter()
    return result
