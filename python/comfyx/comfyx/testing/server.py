"""Start ``comfyx serve`` on a free port and talk to it over HTTP and websocket, as a browser would."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Self

import websocket  # websocket-client


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def comfyx_command() -> list[str]:
    """The installed ``comfyx`` console script, or ``python -m comfyx`` where there is none."""
    script = Path(sys.executable).with_name("comfyx")
    return [str(script)] if script.exists() else [sys.executable, "-m", "comfyx"]


class ServerError(RuntimeError):
    """The server did not start or answer; the message carries the end of its log."""


@dataclass
class PromptRun:
    """One prompt as the websocket client saw it."""

    prompt_id: str
    events: list[tuple[str, dict]] = field(default_factory=list)
    history: dict = field(default_factory=dict)

    def event_types(self) -> list[str]:
        return [event for event, _ in self.events]

    def first(self, event_type: str) -> dict | None:
        return next((data for event, data in self.events if event == event_type), None)


class ComfyxServer:
    """A ``comfyx serve`` subprocess; use as a context manager."""

    def __init__(self, comfyui: Path, comfyui_args: list[str], *, comfyx_args: list[str] = (),
                 log_path: Path, env: dict[str, str] | None = None, stock: bool = False):
        """``stock``: run ComfyUI's own ``main.py`` with this interpreter instead (``comfyx_args`` unused)."""
        self.port = free_port()
        launcher = [sys.executable, str(comfyui / "main.py")] if stock else [
            *comfyx_command(), "serve", "--comfyui", str(comfyui), *comfyx_args, "--"]
        self.command = [*launcher, "--listen", "127.0.0.1", "--port", str(self.port), *comfyui_args]
        self.log_path = log_path
        self.env = {**os.environ, **(env or {})}
        self.process: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def start(self, timeout: float = 240) -> None:
        self._log = open(self.log_path, "wb")  # noqa: SIM115 - closed in stop()
        self.process = subprocess.Popen(self.command, stdout=self._log, stderr=subprocess.STDOUT, env=self.env)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise ServerError(f"comfyx serve exited with {self.process.returncode}:\n{self.log_tail()}")
            try:
                self.get_json("/system_stats")
                return
            except (urllib.error.URLError, ConnectionError, OSError):
                time.sleep(0.5)
        raise ServerError(f"comfyx serve did not answer within {timeout:.0f}s:\n{self.log_tail()}")

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        if self.process is not None:
            self._log.close()

    def log_tail(self, lines: int = 60) -> str:
        text = self.log_path.read_text(errors="replace") if self.log_path.exists() else ""
        return "\n".join(text.splitlines()[-lines:])

    def get_json(self, path: str) -> dict:
        with urllib.request.urlopen(self.url + path, timeout=10) as response:
            return json.loads(response.read())

    def post_json(self, path: str, payload: dict) -> tuple[int, dict]:
        request = urllib.request.Request(self.url + path, data=json.dumps(payload).encode(),
                                         headers={"Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(request, timeout=30) as response:
                return response.status, json.loads(response.read() or b"{}")
        except urllib.error.HTTPError as err:
            return err.code, json.loads(err.read() or b"{}")

    def run_prompt(self, prompt: dict, timeout: float = 300) -> PromptRun:
        """Queue ``prompt`` and collect its websocket events until the executor is idle again."""
        client_id = uuid.uuid4().hex
        ws = websocket.create_connection(f"ws://127.0.0.1:{self.port}/ws?clientId={client_id}", timeout=timeout)
        try:
            status, body = self.post_json("/prompt", {"prompt": prompt, "client_id": client_id})
            if status != 200:
                raise PromptRejectedError(status, body)
            run = PromptRun(body["prompt_id"])
            deadline = time.monotonic() + timeout
            while time.monotonic() < deadline:
                message = ws.recv()
                if not isinstance(message, str):
                    continue  # binary previews
                event = json.loads(message)
                data = event.get("data", {})
                if not isinstance(data, dict) or data.get("prompt_id") != run.prompt_id:
                    continue  # queue status and other prompts' events
                run.events.append((event["type"], data))
                if event["type"] == "executing" and data.get("node") is None and data.get("prompt_id") == run.prompt_id:
                    break
            else:
                raise ServerError(f"prompt {run.prompt_id} did not finish within {timeout:.0f}s:\n{self.log_tail()}")
        finally:
            ws.close()
        run.history = self.get_json(f"/history/{run.prompt_id}").get(run.prompt_id, {})
        return run


class PromptRejectedError(Exception):
    """``POST /prompt`` answered with an error (ComfyUI's validation)."""

    def __init__(self, status: int, body: dict):
        super().__init__(f"HTTP {status}: {json.dumps(body)[:2000]}")
        self.status = status
        self.body = body
