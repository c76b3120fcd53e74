"""A ComfyUI server probed as a hostile user and a careful operator would: the probes of issue 13 and a soak.

Shared by the tests (which assert what ``comfyx serve`` does) and ``bench/hardening.py``
(which records what it and stock ComfyUI do, side by side). Everything talks to a server on
the loopback interface over plain HTTP, as a client would; prompts use ComfyUI's own test
nodes (``StubImage``, ``TestSyncError``) and comfyx's engine test nodes.
"""

from __future__ import annotations

import http.client
import json
import random
import threading
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import websocket

from comfyx.testing.server import ComfyxServer
from comfyx.testing.workflows import txt2img

MIB = 1024 * 1024


@dataclass
class Reply:
    status: int | None  # None: no HTTP answer (connection closed, timeout)
    body: bytes = b""

    def json(self) -> dict:
        try:
            value = json.loads(self.body)
        except ValueError:
            return {}
        return value if isinstance(value, dict) else {}

    @property
    def error_type(self) -> str | None:
        error = self.json().get("error")
        return error.get("type") if isinstance(error, dict) else None

    def summary(self) -> str:
        return f"{self.status} {self.error_type}" if self.error_type else f"{self.status}"


def request(server: ComfyxServer, method: str, path: str, body: bytes | None = None,
            headers: dict[str, str] | None = None, timeout: float = 60) -> Reply:
    """One HTTP request to ``server``; headers given here (Host included) are sent as they are."""
    connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=timeout)
    try:
        connection.request(method, path, body=body, headers=headers or {})
        response = connection.getresponse()
        return Reply(response.status, response.read())
    except (OSError, http.client.HTTPException) as exc:
        return Reply(None, repr(exc).encode())
    finally:
        connection.close()


JSON = {"Content-Type": "application/json"}


def post_prompt(server: ComfyxServer, payload: dict | bytes, headers: dict[str, str] | None = None) -> Reply:
    body = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
    return request(server, "POST", "/prompt", body, {**JSON, **(headers or {})})


def post_json(server: ComfyxServer, path: str, payload: dict) -> Reply:
    return request(server, "POST", path, json.dumps(payload).encode(), JSON)


# --- prompts -------------------------------------------------------------------------------------------------

def stub(size: int = 8, content: str = "BLACK") -> dict:
    return {"class_type": "StubImage", "inputs": {"content": content, "height": size, "width": size, "batch_size": 1}}


def quick(size: int = 8) -> dict:
    """Three nodes, a few milliseconds."""
    return {"1": stub(size), "2": {"class_type": "ImageInvert", "inputs": {"image": ["1", 0]}},
            "3": {"class_type": "PreviewImage", "inputs": {"images": ["2", 0]}}}


def chain(length: int) -> dict:
    """StubImage, then ``length`` ImageInvert nodes one after another, then PreviewImage."""
    prompt = {"0": stub()}
    for i in range(1, length + 1):
        prompt[str(i)] = {"class_type": "ImageInvert", "inputs": {"image": [str(i - 1), 0]}}
    prompt["out"] = {"class_type": "PreviewImage", "inputs": {"images": [str(length), 0]}}
    return prompt


def failing() -> dict:
    return {"1": stub(), "2": {"class_type": "TestSyncError", "inputs": {"value": ["1", 0]}},
            "3": {"class_type": "PreviewImage", "inputs": {"images": ["2", 0]}}}


def sleepy(steps: int, seconds: float, save_prefix: str | None = None) -> dict:
    """``steps`` blocking sleeps one after another: node boundaries to stop at."""
    prompt = {"0": stub()}
    for i in range(1, steps + 1):
        prompt[str(i)] = {"class_type": "ComfyxBlockingSleep", "inputs": {"image": [str(i - 1), 0], "seconds": seconds}}
    prompt["out"] = ({"class_type": "SaveImage", "inputs": {"images": [str(steps), 0], "filename_prefix": save_prefix}}
                     if save_prefix else {"class_type": "PreviewImage", "inputs": {"images": [str(steps), 0]}})
    return prompt


def nested(depth: int) -> object:
    value: object = "deep"
    for _ in range(depth):
        value = [value]
    return value


def cycle() -> dict:
    return {"1": {"class_type": "ImageInvert", "inputs": {"image": ["2", 0]}},
            "2": {"class_type": "ImageInvert", "inputs": {"image": ["1", 0]}},
            "3": {"class_type": "PreviewImage", "inputs": {"images": ["2", 0]}}}


def big(size: int) -> dict:
    """A valid request of about ``size`` bytes (the bulk in extra_data, as a UI workflow would be)."""
    return {"prompt": quick(), "extra_data": {"extra_pnginfo": {"workflow": {"notes": "x" * size}}}}


def big_save(prefix: str, size: int = 3072) -> dict:
    """SaveImage of a noise image that takes seconds to encode: a save to stop midway."""
    return {"1": stub(size, "NOISE"),
            "2": {"class_type": "SaveImage", "inputs": {"images": ["1", 0], "filename_prefix": prefix}}}


def video_saves(prefix: str, size: int = 64, frames: int = 8) -> dict:
    """The two video savers on ``frames`` noise images: SaveWEBM (vp9, ``prefix``) and CreateVideo + SaveVideo
    (h264 MP4, ``prefix_h264``)."""
    images = {"class_type": "StubImage", "inputs": {"content": "NOISE", "height": size, "width": size,
                                                    "batch_size": frames}}
    return {"1": images,
            "2": {"class_type": "SaveWEBM", "inputs": {"images": ["1", 0], "filename_prefix": prefix, "codec": "vp9",
                                                       "fps": 24.0, "crf": 32.0}},
            "3": {"class_type": "CreateVideo", "inputs": {"images": ["1", 0], "fps": 24.0}},
            "4": {"class_type": "SaveVideo", "inputs": {"video": ["3", 0], "filename_prefix": f"{prefix}_h264",
                                                        "format": "mp4", "codec": "h264"}}}


def upload(server: ComfyxServer, filename: str, content: bytes = b"\x89PNG\r\n\x1a\n", **fields: str) -> Reply:
    """``POST /upload/image`` of ``content`` as ``filename``, with more form ``fields``."""
    boundary = uuid.uuid4().hex
    parts = [f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n{value}\r\n'.encode()
             for name, value in fields.items()]
    parts.append(f'--{boundary}\r\nContent-Disposition: form-data; name="image"; filename="{filename}"\r\n'
                 f"Content-Type: image/png\r\n\r\n".encode() + content + b"\r\n")
    body = b"".join(parts) + f"--{boundary}--\r\n".encode()
    return request(server, "POST", "/upload/image", body, {"Content-Type": f"multipart/form-data; boundary={boundary}"})


# --- waiting ---------------------------------------------------------------------------------------------------

def history(server: ComfyxServer, prompt_id: str | None = None) -> dict:
    reply = request(server, "GET", f"/history/{prompt_id}" if prompt_id else "/history?max_items=100000")
    return reply.json() if reply.status == 200 else {}


def wait_for(server: ComfyxServer, prompt_id: str, timeout: float = 60) -> dict | None:
    """The prompt's history entry once it has one, or None after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        entry = history(server, prompt_id).get(prompt_id)
        if entry is not None:
            return entry
        time.sleep(0.02)
    return None


def wait_running(server: ComfyxServer, prompt_id: str, timeout: float = 60) -> bool:
    """Whether the prompt is seen running within ``timeout`` (False at once if it has already ended)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        running = request(server, "GET", "/queue").json().get("queue_running", [])
        if any(item[1] == prompt_id for item in running):
            return True
        if prompt_id in history(server, prompt_id):
            return False
        time.sleep(0.02)
    return False


def post_until_node_runs(server: ComfyxServer, prompt: dict, node: str, timeout: float = 60) -> str:
    """Queue ``prompt``; its id once node ``node`` has begun (its ``executing`` event), not merely the prompt:
    between the two, an interrupt stops the prompt before the node is called at all."""
    client_id = uuid.uuid4().hex
    ws = websocket.create_connection(f"ws://127.0.0.1:{server.port}/ws?clientId={client_id}", timeout=timeout)
    try:
        prompt_id = post_prompt(server, {"prompt": prompt, "client_id": client_id}).json()["prompt_id"]
        while True:
            message = ws.recv()
            event = json.loads(message) if isinstance(message, str) else {}
            data = event.get("data") or {}
            if event.get("type") == "executing" and data.get("prompt_id") == prompt_id:
                if data.get("node") == node:
                    return prompt_id
                if data.get("node") is None:
                    raise AssertionError(f"prompt {prompt_id} ended before node {node} ran")
    finally:
        ws.close()


def outcome(entry: dict | None) -> str:
    """What became of a prompt: success, error, interrupted, or missing (no history entry)."""
    if entry is None:
        return "missing"
    messages = {event: data for event, data in (entry.get("status") or {}).get("messages", [])}
    if "execution_interrupted" in messages:
        return "interrupted"
    return "success" if (entry.get("status") or {}).get("status_str") == "success" else "error"


def worker_alive(server: ComfyxServer, timeout: float = 30) -> bool:
    """Whether the prompt worker still runs prompts: a quick one is queued and must finish."""
    reply = post_prompt(server, {"prompt": quick()})
    return reply.status == 200 and wait_for(server, reply.json()["prompt_id"], timeout) is not None


def wait_for_partial(output: Path, final: str, timeout: float = 60) -> bool:
    """Whether a save to ``output`` has started within ``timeout``: a hidden partial file (comfyx; a
    video's ends in its extension) or the file ``final`` itself (stock, which writes to the final name)
    exists."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if list(output.glob(".*.partial*")) or (output / final).exists():
            return True
        time.sleep(0.005)
    return False


def whole_pngs(output: Path) -> tuple[list[str], list[str]]:
    """The PNG files in ``output`` that decode, and those that do not (truncated)."""
    from PIL import Image  # ComfyUI's requirement: imported here so the module collects without it

    whole, broken = [], []
    for path in sorted(output.glob("*.png")):
        try:
            with Image.open(path) as image:
                image.load()
            whole.append(path.name)
        except OSError:
            broken.append(path.name)
    return whole, broken


def directory(server: ComfyxServer, name: str) -> Path:
    """The server's ``--NAME-directory`` (output, input, temp, user)."""
    return Path(server.command[server.command.index(f"--{name}-directory") + 1])


def rss_mib(server: ComfyxServer) -> float:
    """The server process's resident memory."""
    for line in Path(f"/proc/{server.process.pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmRSS")


def burst(server: ComfyxServer, count: int, threads: int = 8) -> list[Reply]:
    """``count`` quick prompts posted from ``threads`` clients at once."""
    replies: list[Reply] = []
    lock = threading.Lock()

    def client(share: int) -> None:
        for _ in range(share):
            reply = post_prompt(server, {"prompt": quick()})
            with lock:
                replies.append(reply)

    workers = [threading.Thread(target=client, args=(count // threads + (i < count % threads),))
               for i in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    return replies


# --- the soak --------------------------------------------------------------------------------------------------

# kind -> share of the prompts; "refused" kinds are malformed requests a hardened server answers with 400
SOAK_MIX = {
    "valid": 0.58, "txt2img": 0.02, "failing": 0.12, "interrupted": 0.08, "deleted_running": 0.04,
    "invalid_json": 0.03, "null_body": 0.02, "number_abc": 0.02, "extra_data_5": 0.02, "deep_600": 0.02,
    "cycle": 0.02, "bad_link": 0.02, "reused_id": 0.01,
}


@dataclass
class SoakReport:
    prompts: int = 0
    wall_s: float = 0.0
    rss_start_mib: float = 0.0
    rss_end_mib: float = 0.0
    requests: Counter = field(default_factory=Counter)  # kind -> count sent
    answers: Counter = field(default_factory=Counter)  # "kind: HTTP status[ error type]" -> count
    accepted: list[str] = field(default_factory=list)  # prompt ids the server took (200)
    outcomes: Counter = field(default_factory=Counter)  # success / error / interrupted / missing, over accepted
    worker_died_after: int | None = None  # index of the prompt after which no prompt finished any more

    def as_dict(self) -> dict:
        return {"prompts": self.prompts, "wall_s": round(self.wall_s, 1), "rss_start_mib": round(self.rss_start_mib),
                "rss_end_mib": round(self.rss_end_mib), "requests": dict(self.requests), "answers": dict(self.answers),
                "accepted": len(self.accepted), "outcomes": dict(self.outcomes),
                "accounted_for": len(self.accepted) - self.outcomes.get("missing", 0),
                "worker_died_after": self.worker_died_after}


def soak(server: ComfyxServer, count: int, seed: int = 13, txt2img_checkpoint: str | None = None,
         finish_timeout: float = 60) -> SoakReport:
    """Send ``count`` mixed prompts one after another, as clients would, and account for each accepted one.

    Valid, failing and interrupted prompts are waited for (``finish_timeout`` each); once one
    does not finish, the worker is taken for dead and the rest are only sent. Without
    ``txt2img_checkpoint`` the txt2img share runs as valid prompts, as does a reused id before
    any prompt was taken.
    """
    rng = random.Random(seed)
    kinds = rng.choices(list(SOAK_MIX), weights=list(SOAK_MIX.values()), k=count)
    report = SoakReport(prompts=count)
    if txt2img_checkpoint is not None:  # loaded before measuring, as any model a server keeps
        reply = post_prompt(server, {"prompt": txt2img(txt2img_checkpoint, steps=1, prefix="soak_warm")})
        wait_for(server, reply.json().get("prompt_id", ""), 300)
    worker_alive(server)
    report.rss_start_mib = rss_mib(server)
    started = time.monotonic()
    alive = True
    for index, kind in enumerate(kinds):
        if (kind == "txt2img" and txt2img_checkpoint is None) or (kind == "reused_id" and not report.accepted):
            kind = "valid"
        report.requests[kind] += 1
        reply, wait = _send(server, kind, rng, txt2img_checkpoint, report.accepted)
        report.answers[f"{kind}: {reply.summary()}"] += 1
        if reply.status != 200:
            continue
        prompt_id = reply.json()["prompt_id"]
        report.accepted.append(prompt_id)
        if not alive:
            continue
        if kind in ("interrupted", "deleted_running") and wait_running(server, prompt_id, finish_timeout):
            stop = ({"prompt_id": prompt_id}, "/interrupt") if kind == "interrupted" else (
                {"delete": [prompt_id]}, "/queue")
            post_json(server, stop[1], stop[0])
        if wait and wait_for(server, prompt_id, finish_timeout) is None:
            alive = False
            report.worker_died_after = index
    report.wall_s = time.monotonic() - started
    if alive:  # what was queued without waiting has finished by the time a new prompt does
        worker_alive(server)
    report.rss_end_mib = rss_mib(server)
    entries = history(server)
    report.outcomes.update(outcome(entries.get(prompt_id)) for prompt_id in report.accepted)
    return report


def _send(server: ComfyxServer, kind: str, rng: random.Random, checkpoint: str | None,
          accepted: list[str]) -> tuple[Reply, bool]:
    """Send one prompt of ``kind``; also whether to wait for it."""
    if kind == "reused_id":  # the id of an earlier prompt: stock overwrites its history entry
        return post_prompt(server, {"prompt": quick(), "prompt_id": rng.choice(accepted)}), True
    if kind == "valid":
        return post_prompt(server, {"prompt": quick(rng.choice([8, 16, 32])), "client_id": uuid.uuid4().hex}), True
    if kind == "txt2img":
        return post_prompt(server, {"prompt": txt2img(checkpoint, seed=rng.randrange(1 << 30), steps=1,
                                                      prefix="soak")}), True
    if kind == "failing":
        return post_prompt(server, {"prompt": failing()}), True
    if kind in ("interrupted", "deleted_running"):  # seconds that differ: no node of it is cached
        return post_prompt(server, {"prompt": sleepy(steps=4, seconds=0.5 + rng.random() / 1000)}), True
    if kind == "invalid_json":
        return post_prompt(server, b'{"prompt": {'), False
    if kind == "null_body":
        return post_prompt(server, b"null"), False
    if kind == "number_abc":
        return post_prompt(server, {"prompt": quick(), "number": "abc"}), False
    if kind == "extra_data_5":  # stock's worker dies of it
        return post_prompt(server, {"prompt": quick(), "extra_data": 5}), True
    if kind == "deep_600":  # stock's worker dies of it (copy.deepcopy in PromptQueue.get)
        return post_prompt(server, {"prompt": quick(), "extra_data": {"deep": nested(600)}}), True
    if kind == "cycle":
        return post_prompt(server, {"prompt": cycle()}), False
    if kind == "bad_link":
        return post_prompt(server, {"prompt": {"3": {"class_type": "PreviewImage",
                                                     "inputs": {"images": ["9", 0]}}}}), False
    raise ValueError(kind)
