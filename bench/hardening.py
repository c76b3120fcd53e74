"""comfyx serve's hardening against stock ComfyUI: issue 13's probes and a soak, side by side on real ComfyUI.

Two kinds of server, each on the loopback interface with the same ComfyUI flags (``--cpu``,
ComfyUI's own test nodes and comfyx's engine test nodes, the tiny SD1.5-architecture
checkpoint): stock ComfyUI v0.3.64 (its own ``python main.py``) and ``comfyx serve`` with its
defaults (BMF engine, hardening on). Each probe is sent to both; after each, a quick prompt
checks that the server still runs prompts, and a server whose prompt worker died is
restarted for the next probe (the outcome says so). Probes that stop the server (signals)
get a server of their own, restarted on the same directories to read the history back.

The soak sends ``--prompts`` mixed prompts (valid, txt2img, failing, interrupted,
deleted while running, and malformed requests of seven kinds, in the shares of
``SOAK_MIX``, the same seeded sequence on both) one after another, waiting for each prompt
that runs, to a fresh server of each kind; it reports the requests by kind and the
answers, how the accepted prompts ended (every one must have a history entry), whether
the prompt worker died (and after which prompt), the server's RSS before (model loaded)
and after, and the wall time.

    COMFYUI_PATH=/path/to/ComfyUI python bench/hardening.py     # writes bench/results/hardening.json
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import signal
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable
from pathlib import Path

import websocket
from comfyx.engine.tests.support import start_server
from comfyx.hardening.tests.abuse import (
    MIB,
    big,
    big_save,
    burst,
    chain,
    cycle,
    directory,
    history,
    nested,
    outcome,
    post_json,
    post_prompt,
    quick,
    request,
    sleepy,
    soak,
    stub,
    upload,
    wait_for,
    wait_for_partial,
    wait_running,
    whole_pngs,
    worker_alive,
)
from comfyx.testing.server import ComfyxServer
from comfyx.testing.workflows import TINY_CHECKPOINT

RESULTS = Path(__file__).resolve().parent / "results"
SIDES = ("stock", "comfyx")
ALIVE_TIMEOUT = 20  # seconds a quick prompt may take before the worker is taken for dead


class Side:
    """Servers of one kind (stock or comfyx), each in a directory of its own under ``work``."""

    def __init__(self, name: str, comfyui: Path, work: Path, checkpoints: Path):
        self.name, self.comfyui, self.work, self.checkpoints = name, comfyui, work, checkpoints
        self.count = 0

    def start(self, root: Path | None = None) -> ComfyxServer:
        if root is None:
            self.count += 1
            root = self.work / f"{self.name}{self.count}"
        return start_server(self.comfyui, root, None, checkpoints=self.checkpoints, stock=self.name == "stock")


def post_body(server: ComfyxServer, body: bytes, headers: dict | None = None) -> str:
    return post_prompt(server, body, headers).summary()


def queued_and_ran(server: ComfyxServer, payload: dict, timeout: float = 60) -> str:
    reply = post_prompt(server, payload)
    if reply.status != 200:
        return reply.summary()
    return f"200, {outcome(wait_for(server, reply.json()['prompt_id'], timeout))}"


def probe_chain(length: int) -> Callable[[ComfyxServer], str]:
    return lambda server: queued_and_ran(server, {"prompt": chain(length)}, 300)


def probe_cycle(server: ComfyxServer) -> str:
    reply = post_prompt(server, {"prompt": cycle()})
    return f"{reply.status}, node_errors for {sorted(reply.json().get('node_errors', {}))}"


def probe_bad_link(server: ComfyxServer) -> str:
    reply = post_prompt(server, {"prompt": {"1": stub(), "2": {"class_type": "PreviewImage",
                                                               "inputs": {"images": ["9", 0]}}}})
    return f"{reply.status}: {reply.json().get('error', {}).get('details', '')}"


def probe_big(server: ComfyxServer) -> str:
    reply = post_prompt(server, big(20 * MIB))
    if reply.status != 200:
        return reply.summary()
    wait_for(server, reply.json()["prompt_id"])
    return f"200, kept in the history ({len(json.dumps(history(server, reply.json()['prompt_id']))) // MIB} MiB)"


def probe_origin(headers: dict) -> Callable[[ComfyxServer], str]:
    def probe(server: ComfyxServer) -> str:
        given = {key: value.replace("PORT", str(server.port)) for key, value in headers.items()}
        return post_prompt(server, {"prompt": quick()}, {**given, "Content-Type": "text/plain"}).summary()

    return probe


def probe_ws_null_origin(server: ComfyxServer) -> str:
    try:
        websocket.create_connection(f"ws://127.0.0.1:{server.port}/ws", origin="null", timeout=30).close()
    except websocket.WebSocketBadStatusException as exc:
        return f"{exc.status_code}, refused"
    return "101, connected (sees every broadcast event)"


def probe_upload(filename: str, **fields: str) -> Callable[[ComfyxServer], str]:
    return lambda server: upload(server, filename, **fields).summary()


def probe_view(query: str) -> Callable[[ComfyxServer], str]:
    return lambda server: request(server, "GET", f"/view?{query}").summary()


def probe_preview_of_text(server: ComfyxServer) -> str:
    upload(server, "text.png", b"not an image")
    return request(server, "GET", "/view?filename=text.png&type=input&preview=webp").summary()


def probe_stop_running(how: str) -> Callable[[ComfyxServer], str]:
    def probe(server: ComfyxServer) -> str:
        prompt_id = post_prompt(server, {"prompt": sleepy(8, 0.5)}).json()["prompt_id"]
        wait_running(server, prompt_id)
        started = time.monotonic()
        payload, path = ({"delete": [prompt_id]}, "/queue") if how == "delete" else ({"prompt_id": prompt_id},
                                                                                      "/interrupt")
        status = post_json(server, path, payload).status
        result = outcome(wait_for(server, prompt_id))
        return f"{status}, prompt {result} after {time.monotonic() - started:.1f} s"

    return probe


def probe_clear(server: ComfyxServer) -> str:
    running = post_prompt(server, {"prompt": sleepy(4, 0.5)}).json()["prompt_id"]
    queued = [post_prompt(server, {"prompt": quick()}).json()["prompt_id"] for _ in range(3)]
    wait_running(server, running)
    status = post_json(server, "/queue", {"clear": True}).status
    finished = outcome(wait_for(server, running))
    ran = len(set(queued) & set(history(server)))
    return f"{status}, {3 - ran} of 3 queued prompts cleared, the running one: {finished}"


def probe_reused_id(server: ComfyxServer) -> str:
    prompt_id = uuid.uuid4().hex
    first = post_prompt(server, {"prompt": quick(), "prompt_id": prompt_id})
    wait_for(server, prompt_id)
    second = post_prompt(server, {"prompt": sleepy(1, 0.1), "prompt_id": prompt_id})
    time.sleep(1.0)
    kept = history(server, prompt_id).get(prompt_id, {}).get("prompt", [None, None, {}])[2]
    return f"{first.status} then {second.summary()}, history entry {'kept' if kept == quick() else 'overwritten'}"


def probe_burst(count: int) -> Callable[[ComfyxServer], str]:
    def probe(server: ComfyxServer) -> str:
        started = time.monotonic()
        replies = burst(server, count)
        ids = {reply.json()["prompt_id"] for reply in replies if reply.status == 200}
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline and not ids <= set(history(server)):
            time.sleep(0.2)
        done = len(ids & set(history(server)))
        return f"{len(ids)} of {count} taken, {done} ran, {time.monotonic() - started:.1f} s"

    return probe


def probe_websockets(server: ComfyxServer) -> str:
    ended: list[bool] = []

    def client(index: int) -> None:
        client_id = uuid.uuid4().hex
        ws = websocket.create_connection(f"ws://127.0.0.1:{server.port}/ws?clientId={client_id}", timeout=60)
        try:
            prompt_id = post_prompt(server, {"prompt": quick(8 + index), "client_id": client_id}).json()["prompt_id"]
            while True:
                message = ws.recv()
                data = json.loads(message).get("data", {}) if isinstance(message, str) else {}
                if data.get("prompt_id") == prompt_id and data.get("node", "") is None:
                    ended.append(True)
                    return
        except (websocket.WebSocketException, OSError):
            return
        finally:
            ws.close()

    threads = [threading.Thread(target=client, args=(i,)) for i in range(10)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(90)
    return f"{len(ended)} of 10 clients saw their prompt end"


HTTP_PROBES: dict[str, Callable[[ComfyxServer], str]] = {
    "invalid JSON": lambda s: post_body(s, b'{"prompt": {'),
    "empty body": lambda s: post_body(s, b""),
    "null body": lambda s: post_body(s, b"null"),
    "prompt not an object": lambda s: post_body(s, b'{"prompt": [1, 2]}'),
    '"number": "abc"': lambda s: post_prompt(s, {"prompt": quick(), "number": "abc"}).summary(),
    '"extra_data": 5, no client_id': lambda s: post_prompt(s, {"prompt": quick(), "extra_data": 5}).summary(),
    '"extra_data": "garbage" with client_id': lambda s: post_prompt(
        s, {"prompt": quick(), "extra_data": "garbage", "client_id": "c"}).summary(),
    "input nested 550 deep": lambda s: post_prompt(s, {"prompt": quick(), "extra_data": {"x": nested(550)}}).summary(),
    "20 MB prompt": probe_big,
    "multipart body": lambda s: post_body(s, json.dumps({"prompt": quick()}).encode(),
                                          {"Content-Type": "multipart/form-data; boundary=x"}),
    "5,000-node chain": probe_chain(5_000),
    "10,000-node chain": probe_chain(10_000),
    "link cycle": probe_cycle,
    "bad link": probe_bad_link,
    'node id ""': lambda s: queued_and_ran(s, {"prompt": {"": stub(), "o": {
        "class_type": "PreviewImage", "inputs": {"images": ["", 0]}}}}),
    "Origin: null": probe_origin({"Origin": "null"}),
    "Origin of another site, LAN Host": probe_origin({"Origin": "http://evil.example", "Host": "192.168.1.5:PORT"}),
    "websocket from Origin: null": probe_ws_null_origin,
    "/view ../../etc/passwd": probe_view("filename=../../etc/passwd"),
    "/view subfolder ../../../etc": probe_view("filename=passwd&subfolder=../../../etc"),
    "/view type=bogus": probe_view("filename=x.png&type=bogus"),
    "/view preview of a non-image": probe_preview_of_text,
    "/upload/image ../escape.png": probe_upload("../escape.png"),
    "/upload/image a/b.png": probe_upload("a/b.png"),
    "/upload/image .": probe_upload("."),
    "/upload/image 300-character name": probe_upload("x" * 300 + ".png"),
    "/upload/image type=models": probe_upload("ok.png", type="models"),
    "interrupt the running prompt": probe_stop_running("interrupt"),
    "delete the running prompt": probe_stop_running("delete"),
    "clear the queue": probe_clear,
    "reuse a prompt_id": probe_reused_id,
    "burst of 50": probe_burst(50),
    "burst of 200": probe_burst(200),
    "10 websocket clients": probe_websockets,
}


def run_http_probes(side: Side) -> dict[str, str]:
    results = {}
    server = side.start()
    try:
        for name, probe in HTTP_PROBES.items():
            try:
                result = probe(server)
            except Exception as exc:  # noqa: BLE001 - a probe that breaks the client is an outcome too
                result = f"client error: {type(exc).__name__}: {exc}"
            if not worker_alive(server, ALIVE_TIMEOUT):
                result += "; prompt worker dead (server restarted)"
                server.stop()
                server = side.start()
            results[name] = result
            print(f"{side.name:6s} {name}: {result}", flush=True)
    finally:
        server.stop()
    return results


def stop_with(server: ComfyxServer, number: int) -> str:
    sent = time.monotonic()
    server.process.send_signal(number)
    try:
        status = server.process.wait(timeout=90)
    except subprocess.TimeoutExpired:
        server.process.kill()
        return f"{signal.Signals(number).name}: no exit within 90 s (killed)"
    return f"{signal.Signals(number).name}: exit {status} after {time.monotonic() - sent:.1f} s"


def probe_signal_mid_run(side: Side, number: int) -> str:
    server = side.start()
    root = server.log_path.parent
    try:
        done = post_prompt(server, {"prompt": quick()}).json()["prompt_id"]
        wait_for(server, done)
        running = post_prompt(server, {"prompt": sleepy(20, 0.5)}).json()["prompt_id"]
        wait_running(server, running)
        queued = post_prompt(server, {"prompt": quick()}).json()["prompt_id"]
        stopped = stop_with(server, number)
    finally:
        server.stop()
    again = side.start(root)
    try:
        entries = history(again)
        kept = ", ".join(f"{what} {outcome(entries.get(prompt_id))}"
                         for what, prompt_id in (("done", done), ("running", running), ("queued", queued)))
    finally:
        again.stop()
    return f"{stopped}; history after restart: {kept}"


def probe_signal_mid_save(side: Side, number: int) -> str:
    server = side.start()
    try:
        output = directory(server, "output")
        post_prompt(server, {"prompt": big_save("big")})
        if not wait_for_partial(output, "big_00001_.png"):
            return "the save never started"
        stopped = stop_with(server, number)
    finally:
        server.stop()
    whole, broken = whole_pngs(output)
    return f"{stopped}; PNGs: {len(whole)} whole, {len(broken)} truncated"


def run_lifecycle_probes(side: Side) -> dict[str, str]:
    results = {}
    for name, probe in {
        "SIGTERM mid-run": lambda: probe_signal_mid_run(side, signal.SIGTERM),
        "SIGINT mid-run": lambda: probe_signal_mid_run(side, signal.SIGINT),
        "SIGTERM mid-save": lambda: probe_signal_mid_save(side, signal.SIGTERM),
        "SIGKILL mid-save": lambda: probe_signal_mid_save(side, signal.SIGKILL),
    }.items():
        results[name] = probe()
        print(f"{side.name:6s} {name}: {results[name]}", flush=True)
    return results


def run_soak(side: Side, prompts: int) -> dict:
    server = side.start()
    try:
        report = soak(server, prompts, txt2img_checkpoint=TINY_CHECKPOINT, finish_timeout=30)
    finally:
        server.stop()
    print(f"{side.name:6s} soak: {report.as_dict()}", flush=True)
    return report.as_dict()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--comfyui", type=Path, default=os.environ.get("COMFYUI_PATH"))
    parser.add_argument("--prompts", type=int, default=1000, help="prompts in the soak")
    parser.add_argument("--out", type=Path, default=RESULTS / "hardening.json")
    args = parser.parse_args()
    if args.comfyui is None:
        parser.error("--comfyui or COMFYUI_PATH is required")
    if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:  # started in the background: children would ignore
        signal.signal(signal.SIGINT, signal.default_int_handler)  # the SIGINT probe too
    work = Path(tempfile.mkdtemp(prefix="comfyx-bench-hardening-"))
    checkpoints = work / "checkpoints"
    subprocess.run([sys.executable, "-m", "comfyx.testing.checkpoint", "--comfyui", str(args.comfyui),
                    str(checkpoints / TINY_CHECKPOINT)], check=True, capture_output=True)
    sides = {name: Side(name, args.comfyui, work, checkpoints) for name in SIDES}
    data = {
        "machine": f"{platform.machine()}, {os.cpu_count()} CPUs, Python {platform.python_version()}",
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "servers": {"stock": "python main.py (ComfyUI v0.3.64) --cpu", "comfyx": "comfyx serve (defaults) -- --cpu"},
        "probes": {name: {} for name in [*HTTP_PROBES, "SIGTERM mid-run", "SIGINT mid-run", "SIGTERM mid-save",
                                         "SIGKILL mid-save"]},
        "soak": {},
    }
    for name, side in sides.items():
        for probe, result in {**run_http_probes(side), **run_lifecycle_probes(side)}.items():
            data["probes"][probe][name] = result
    for name, side in sides.items():
        data["soak"][name] = run_soak(side, args.prompts)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(data, indent=2, ensure_ascii=False) + "\n")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
