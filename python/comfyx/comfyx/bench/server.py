"""A ComfyUI server in a subprocess (stock ``python main.py`` or ``comfyx serve``), driven over HTTP.

A client talks to it as a browser tab does: the websocket open before ``POST /prompt``, every
event of the prompt collected with the time it arrived, until the executor is idle again.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Self


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def comfyx_command() -> list[str]:
    """The installed ``comfyx`` console script, or ``python -m comfyx`` where there is none."""
    script = Path(sys.executable).with_name("comfyx")
    return [str(script)] if script.exists() else [sys.executable, "-m", "comfyx"]


def serve_command(comfyui: Path, comfyx_args: list[str], comfyui_args: list[str]) -> list[str]:
    return [*comfyx_command(), "serve", "--comfyui", str(comfyui), *comfyx_args, "--", *comfyui_args]


class ServerError(RuntimeError):
    """The server did not start or answer; the message carries the end of its log."""


class PromptRejectedError(Exception):
    """``POST /prompt`` answered with an error (ComfyUI's validation)."""

    def __init__(self, status: int, body: dict):
        super().__init__(f"HTTP {status}: {json.dumps(body)[:2000]}")
        self.status = status
        self.body = body


@dataclass
class PromptRun:
    """One prompt as the websocket client saw it: events with their arrival times (monotonic s)."""

    prompt_id: str
    posted: float = 0.0
    events: list[tuple[str, dict]] = field(default_factory=list)
    times: list[float] = field(default_factory=list)
    history: dict = field(default_factory=dict)
    finished: float = 0.0

    @property
    def end_to_end(self) -> float:
        """Seconds from just before ``POST /prompt`` until the idle event and the history were in."""
        return self.finished - self.posted

    def event_types(self) -> list[str]:
        return [event for event, _ in self.events]

    def first(self, event_type: str) -> dict | None:
        return next((data for event, data in self.events if event == event_type), None)

    def timed(self, event_type: str) -> list[tuple[float, dict]]:
        return [(t, data) for t, (event, data) in zip(self.times, self.events, strict=True) if event == event_type]

    def error(self) -> str | None:
        failed = self.first("execution_error")
        if failed is None:
            return None
        message = failed.get("exception_message", "").strip()
        return f"{failed.get('node_type')} (node {failed.get('node_id')}): {message}"


class ComfyUIServer:
    """A server process on a free loopback port; use as a context manager."""

    def __init__(
        self, command: list[str], *, log_path: Path, env: dict[str, str] | None = None, cwd: Path | None = None,
        wrapper: list[str] | None = None,
    ):
        """``wrapper``: a command that runs the server as its child and ends it on SIGINT (a profiler)."""
        self.port = free_port()
        self.command = [*(wrapper or []), *command, "--listen", "127.0.0.1", "--port", str(self.port)]
        self.wrapped = bool(wrapper)
        self.log_path = log_path
        self.env = {**os.environ, **(env or {})}
        self.cwd = cwd
        self.process: subprocess.Popen | None = None
        self.started_in: float | None = None

    @classmethod
    def stock(cls, comfyui: Path, comfyui_args: list[str], **kwargs: object) -> Self:
        """``python main.py ARGS`` in the checkout, as a user starts ComfyUI."""
        return cls([sys.executable, str(comfyui / "main.py"), *comfyui_args], cwd=comfyui, **kwargs)

    @classmethod
    def comfyx(cls, comfyui: Path, comfyx_args: list[str], comfyui_args: list[str], **kwargs: object) -> Self:
        """``comfyx serve --comfyui DIR COMFYX_ARGS -- ARGS``."""
        return cls(serve_command(comfyui, comfyx_args, comfyui_args), **kwargs)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def pid(self) -> int | None:
        return None if self.process is None else self.process.pid

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def start(self, timeout: float = 240) -> None:
        begin = time.monotonic()
        self._log = open(self.log_path, "wb")  # noqa: SIM115 - closed in stop()
        self.process = subprocess.Popen(self.command, stdout=self._log, stderr=subprocess.STDOUT, env=self.env,
                                        cwd=self.cwd)
        deadline = begin + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise ServerError(f"the server exited with {self.process.returncode}:\n{self.log_tail()}")
            try:
                self.get_json("/system_stats")
                self.started_in = time.monotonic() - begin
                return
            except (urllib.error.URLError, ConnectionError, OSError):
                time.sleep(0.25)
        raise ServerError(f"the server did not answer within {timeout:.0f}s:\n{self.log_tail()}")

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            if self.wrapped:  # the wrapper writes what it collected, then ends the server
                self.process.send_signal(signal.SIGINT)
            else:
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

    def get_bytes(self, path: str) -> bytes:
        with urllib.request.urlopen(self.url + path, timeout=60) as response:
            return response.read()

    def post_json(self, path: str, payload: dict) -> tuple[int, dict]:
        request = urllib.request.Request(self.url + path, data=json.dumps(payload).encode(),
                                         headers={"Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(request, timeout=30) as response:
                return response.status, json.loads(response.read() or b"{}")
        except urllib.error.HTTPError as err:
            return err.code, json.loads(err.read() or b"{}")

    def upload_image(self, name: str, data: bytes) -> str:
        """``POST /upload/image``; returns the name LoadImage takes."""
        boundary = uuid.uuid4().hex
        body = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"image\"; filename=\"{name}\"\r\n"
                f"Content-Type: image/png\r\n\r\n").encode() + data + (
                f"\r\n--{boundary}\r\nContent-Disposition: form-data; name=\"overwrite\"\r\n\r\ntrue\r\n"
                f"--{boundary}--\r\n").encode()
        request = urllib.request.Request(self.url + "/upload/image", data=body,
                                         headers={"Content-Type": f"multipart/form-data; boundary={boundary}"})
        with urllib.request.urlopen(request, timeout=60) as response:
            answer = json.loads(response.read())
        return answer["name"] if not answer.get("subfolder") else f"{answer['subfolder']}/{answer['name']}"

    def output_bytes(self, image: dict) -> bytes:
        """The file an output node reported (an entry of its history ``images``)."""
        query = urllib.parse.urlencode({"filename": image["filename"], "subfolder": image.get("subfolder", ""),
                                        "type": image.get("type", "output")})
        return self.get_bytes(f"/view?{query}")

    def run_prompt(self, prompt: dict, *, extra_data: dict | None = None, targets: list[str] | None = None,
                   interrupt_after: float | None = None, timeout: float = 600) -> PromptRun:
        """Queue ``prompt`` and collect its websocket events until the executor is idle again.

        ``targets``: ComfyUI's ``partial_execution_targets``; ``interrupt_after``: seconds after
        which to ``POST /interrupt``. Text frames are decoded (and so checked) as UTF-8 by
        ``json.loads``; websocket-client's own pure-Python UTF-8 check (about 0.5 µs a byte) is
        skipped.
        """
        import websocket  # websocket-client: in comfyx's test and bench extras

        client_id = uuid.uuid4().hex
        ws = websocket.create_connection(f"ws://127.0.0.1:{self.port}/ws?clientId={client_id}", timeout=timeout,
                                         skip_utf8_validation=True)
        try:
            payload: dict = {"prompt": prompt, "client_id": client_id}
            if extra_data is not None:
                payload["extra_data"] = extra_data
            if targets is not None:
                payload["partial_execution_targets"] = targets
            posted = time.monotonic()
            status, body = self.post_json("/prompt", payload)
            if status != 200:
                raise PromptRejectedError(status, body)
            run = PromptRun(body["prompt_id"], posted=posted)
            deadline = posted + timeout
            interrupted = interrupt_after is None
            while time.monotonic() < deadline:
                if not interrupted:
                    ws.settimeout(max(0.01, posted + interrupt_after - time.monotonic()))
                try:
                    message = ws.recv()
                except websocket.WebSocketTimeoutException:
                    if interrupted:
                        raise
                    self.post_json("/interrupt", {})
                    interrupted = True
                    ws.settimeout(timeout)
                    continue
                now = time.monotonic()
                if not isinstance(message, str):
                    continue  # binary previews
                event = json.loads(message)
                data = event.get("data", {})
                if not isinstance(data, dict) or data.get("prompt_id") != run.prompt_id:
                    continue  # queue status and other prompts' events
                run.events.append((event["type"], data))
                run.times.append(now)
                if event["type"] == "executing" and data.get("node") is None:
                    break
            else:
                raise ServerError(f"prompt {run.prompt_id} did not finish within {timeout:.0f}s:\n{self.log_tail()}")
        finally:
            ws.close()
        run.history = self.get_json(f"/history/{run.prompt_id}").get(run.prompt_id, {})
        run.finished = time.monotonic()
        return run
