"""The probes of issue 13 against `comfyx serve` on real ComfyUI: each gives the hardened outcome.

Stock ComfyUI's outcome is noted with each; ``bench/hardening.py`` records both side by side.
"""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import websocket

from comfyx.engine.tests.support import start_server
from comfyx.hardening.history import FILE_NAME
from comfyx.hardening.tests.abuse import (
    JSON,
    MIB,
    big,
    burst,
    chain,
    cycle,
    directory,
    failing,
    history,
    nested,
    outcome,
    post_json,
    post_prompt,
    quick,
    request,
    sleepy,
    stub,
    upload,
    wait_for,
    wait_running,
    worker_alive,
)
from comfyx.testing.server import ComfyxServer

pytestmark = [pytest.mark.comfyui, pytest.mark.slow]


@pytest.mark.parametrize(("body", "headers", "kind"), [
    (b'{"prompt": {', {}, "invalid_json"),  # stock: 500
    (b"", {}, "invalid_json"),  # stock: 500
    (b"null", {}, "invalid_prompt_request"),  # stock: 500
    (b'{"prompt": [1, 2]}', {}, "invalid_prompt_request"),  # stock: 500
    (b'{"prompt": "x"}', {}, "invalid_prompt_request"),  # stock: 500
    (json.dumps({"prompt": quick(), "number": "abc"}).encode(), {}, "invalid_prompt_request"),  # stock: 500
    (json.dumps({"prompt": quick(), "extra_data": 5}).encode(), {}, "invalid_prompt_request"),  # stock: worker dies
    (json.dumps({"prompt": quick(), "extra_data": "x", "client_id": "c"}).encode(), {},
     "invalid_prompt_request"),  # stock: 500
    (json.dumps({"prompt": quick(), "client_id": ["not", "hashable"]}).encode(), {},
     "invalid_prompt_request"),  # stock: its websocket sender dies
    (json.dumps({"prompt": quick(), "partial_execution_targets": 5}).encode(), {}, "invalid_prompt_request"),
    (json.dumps({"prompt": {"1": 5}}).encode(), {}, "invalid_prompt"),  # stock: 500
    (json.dumps({"prompt": {"1": {"class_type": "PreviewImage"}}}).encode(), {}, "invalid_prompt"),
    (json.dumps({"prompt": quick()}).encode(), {"Content-Type": "multipart/form-data; boundary=x"},
     "invalid_content_type"),  # stock: queued
])
def test_malformed_bodies_get_400_naming_the_problem(served: ComfyxServer, body: bytes, headers: dict,
                                                     kind: str) -> None:
    reply = post_prompt(served, body, headers)
    assert reply.status == 400, reply.body
    assert reply.error_type == kind
    assert reply.json()["error"]["message"]


def test_after_every_malformed_body_the_worker_still_runs_prompts(served: ComfyxServer) -> None:
    for payload in (b"null", {"prompt": quick(), "extra_data": 5}, {"prompt": quick(), "extra_data": nested(600)}):
        post_prompt(served, payload)
    assert worker_alive(served)


def test_a_20_mb_prompt_is_refused_by_default(served: ComfyxServer) -> None:
    reply = post_prompt(served, big(20 * MIB))  # stock: queued, and kept in its history
    assert reply.status == 400 and reply.error_type == "prompt_too_large"
    assert "--max-prompt-bytes" in reply.json()["error"]["details"]


def test_a_20_mb_prompt_without_a_length_is_refused_too(served: ComfyxServer) -> None:
    import http.client

    body = json.dumps(big(20 * MIB)).encode()
    connection = http.client.HTTPConnection("127.0.0.1", served.port, timeout=60)
    try:
        connection.request("POST", "/prompt", body=(body[i:i + MIB] for i in range(0, len(body), MIB)),
                           headers=JSON, encode_chunked=True)
        response = connection.getresponse()
        assert response.status == 400 and b"prompt_too_large" in response.read()
    finally:
        connection.close()


@pytest.mark.parametrize("depth", [550, 100_000])
def test_deep_nesting_is_refused(served: ComfyxServer, depth: int) -> None:
    # stock: 550 levels are queued and kill the worker (copy.deepcopy); 100,000 are a 500
    body = b'{"prompt": %s, "extra_data": {"x": %s}}' % (json.dumps(quick()).encode(), b"[" * depth + b"]" * depth)
    reply = post_prompt(served, body)
    assert reply.status == 400 and reply.error_type == "prompt_too_deep"


@pytest.mark.parametrize("length", [5_000, 10_000])
def test_long_chains_validate_and_run(served: ComfyxServer, length: int) -> None:
    # stock: a RecursionError in validation, answered as an invalid prompt
    reply = post_prompt(served, {"prompt": chain(length)})
    assert reply.status == 200, reply.body[:2000]
    assert outcome(wait_for(served, reply.json()["prompt_id"], 300)) == "success"


def test_a_cycle_names_its_nodes(served: ComfyxServer) -> None:
    reply = post_prompt(served, {"prompt": cycle()})  # stock: 400 with empty node_errors
    assert reply.status == 400
    errors = reply.json()["node_errors"]
    assert set(errors) == {"1", "2"}
    assert errors["1"]["errors"][0]["type"] == "dependency_cycle"
    assert errors["1"]["errors"][0]["details"] == "1 -> 2 -> 1"


@pytest.mark.parametrize(("link", "message"), [
    (["9", 0], "node '9' is not in the prompt"),
    (["1", 3], "node '1' (StubImage) has no output 3 (it has 1)"),
    (["1", "0"], "output index '0' of node '1' is not a whole number"),
])
def test_bad_links_name_the_node_and_the_link(served: ComfyxServer, link: list, message: str) -> None:
    prompt = {"1": stub(), "2": {"class_type": "PreviewImage", "inputs": {"images": link}}}
    reply = post_prompt(served, {"prompt": prompt})  # stock: "Exception when validating node: '9'"
    assert reply.status == 400
    (error,) = reply.json()["node_errors"]["2"]["errors"]
    assert error["type"] == "bad_linked_input" and error["message"] == f"Bad linked input: {message}"
    assert error["extra_info"]["input_name"] == "images"


def test_odd_node_ids(served: ComfyxServer) -> None:
    for node_id in ("", "x" * 300):
        prompt = {node_id: stub(), "out": {"class_type": "PreviewImage", "inputs": {"images": [node_id, 0]}}}
        reply = post_prompt(served, {"prompt": prompt})
        assert reply.status == 400 and reply.error_type == "invalid_prompt"
    odd = "ü 1.a:b/../"
    prompt = {odd: stub(), "out": {"class_type": "PreviewImage", "inputs": {"images": [odd, 0]}}}
    reply = post_prompt(served, {"prompt": prompt})
    assert reply.status == 200
    assert outcome(wait_for(served, reply.json()["prompt_id"])) == "success"


def test_a_reused_prompt_id_is_refused(served: ComfyxServer) -> None:
    prompt_id = uuid.uuid4().hex
    assert post_prompt(served, {"prompt": sleepy(1, 0.5), "prompt_id": prompt_id}).status == 200
    again = post_prompt(served, {"prompt": failing(), "prompt_id": prompt_id})  # queued or running meanwhile
    assert again.status == 400 and again.error_type == "prompt_id_in_use"
    assert outcome(wait_for(served, prompt_id)) == "success"
    after = post_prompt(served, {"prompt": failing(), "prompt_id": prompt_id})  # stock: overwrites the entry
    assert after.status == 400 and after.error_type == "prompt_id_in_use"
    assert outcome(history(served, prompt_id)[prompt_id]) == "success"


def test_deleting_the_running_prompt_interrupts_it(served: ComfyxServer) -> None:
    prompt_id = post_prompt(served, {"prompt": sleepy(20, 0.5)}).json()["prompt_id"]
    assert wait_running(served, prompt_id)
    assert post_json(served, "/queue", {"delete": [prompt_id]}).status == 200  # stock: 200, and it runs on
    assert outcome(wait_for(served, prompt_id, timeout=5)) == "interrupted"


def test_interrupts_and_queue_clearing_work_as_in_stock(served: ComfyxServer) -> None:
    running = post_prompt(served, {"prompt": sleepy(20, 0.5)}).json()["prompt_id"]
    queued = [post_prompt(served, {"prompt": quick()}).json()["prompt_id"] for _ in range(3)]
    assert wait_running(served, running)
    assert post_json(served, "/queue", {"clear": True}).status == 200
    assert post_json(served, "/interrupt", {"prompt_id": running}).status == 200
    assert outcome(wait_for(served, running, timeout=5)) == "interrupted"
    assert worker_alive(served)
    assert not set(queued) & set(history(served))


def test_a_burst_of_200_prompts_is_taken_and_run(served: ComfyxServer) -> None:
    replies = burst(served, 200)
    assert [reply.status for reply in replies] == [200] * 200
    ids = {reply.json()["prompt_id"] for reply in replies}
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline and not ids <= set(history(served)):
        time.sleep(0.5)
    entries = history(served)
    assert {outcome(entries.get(prompt_id)) for prompt_id in ids} == {"success"}


def test_ten_websocket_clients_each_see_their_own_prompt(served: ComfyxServer) -> None:
    seen: dict[str, list[str]] = {}

    def client(index: int) -> None:
        client_id = f"client{index}-{uuid.uuid4().hex}"
        ws = websocket.create_connection(f"ws://127.0.0.1:{served.port}/ws?clientId={client_id}", timeout=120)
        try:
            prompt_id = post_prompt(served, {"prompt": quick(8 + index), "client_id": client_id}).json()["prompt_id"]
            events = seen.setdefault(prompt_id, [])
            while True:
                message = ws.recv()
                if not isinstance(message, str):
                    continue
                event = json.loads(message)
                data = event.get("data") or {}
                if data.get("prompt_id") not in (None, prompt_id):
                    events.append("someone else's event")
                if data.get("prompt_id") == prompt_id:
                    events.append(event["type"])
                    if event["type"] == "executing" and data.get("node") is None:
                        return
        finally:
            ws.close()

    clients = [threading.Thread(target=client, args=(i,)) for i in range(10)]
    for thread in clients:
        thread.start()
    for thread in clients:
        thread.join(timeout=180)
    assert len(seen) == 10
    for events in seen.values():
        assert "someone else's event" not in events
        assert events[0] == "execution_start" and "execution_success" in events


@pytest.mark.parametrize(("headers", "status"), [
    ({"Origin": "null"}, 403),  # stock: 200
    ({"Origin": "http://evil.example", "Host": "192.168.1.5:8188"}, 403),  # stock: 200 (checks loopback hosts only)
    ({"Origin": "http://evil.example"}, 403),  # as stock
    ({}, 200),
])
def test_other_sites_cannot_queue_prompts(served: ComfyxServer, headers: dict, status: int) -> None:
    if "Host" not in headers and "Origin" in headers and headers["Origin"] != "null":
        headers = {**headers, "Host": f"127.0.0.1:{served.port}"}
    reply = post_prompt(served, {"prompt": quick()}, {**headers, "Content-Type": "text/plain"})
    assert reply.status == status, reply.body
    same_site = post_prompt(served, {"prompt": quick()}, {"Origin": f"http://127.0.0.1:{served.port}"})
    assert same_site.status == 200


def test_a_websocket_from_a_null_origin_is_refused(served: ComfyxServer) -> None:
    with pytest.raises(websocket.WebSocketBadStatusException) as raised:  # stock: it sees every prompt's events
        websocket.create_connection(f"ws://127.0.0.1:{served.port}/ws", origin="null", timeout=30)
    assert raised.value.status_code == 403


@pytest.mark.parametrize(("filename", "fields"), [
    ("../escape.png", {}),  # stock: 400
    ("a/b.png", {}),  # stock: 500
    (".", {}),  # stock: 500
    ("x" * 300 + ".png", {}),  # stock: 500
    ("ok.png", {"type": "models"}),  # stock: 500
    ("ok.png", {"subfolder": "../../x"}),  # stock: 400
])
def test_odd_upload_names_get_400(served: ComfyxServer, filename: str, fields: dict) -> None:
    reply = upload(served, filename, **fields)
    assert reply.status == 400, reply.body
    assert reply.body.strip()
    assert not list(directory(served, "input").parent.glob("escape.png"))


def test_an_upload_without_a_file_gets_400(served: ComfyxServer) -> None:
    boundary = "b0undary"
    body = f'--{boundary}\r\nContent-Disposition: form-data; name="image"\r\n\r\ntext\r\n--{boundary}--\r\n'.encode()
    reply = request(served, "POST", "/upload/image", body,
                    {"Content-Type": f"multipart/form-data; boundary={boundary}"})
    assert reply.status == 400 and b"must be a file" in reply.body  # stock: 500


def test_uploads_and_views_still_work(served: ComfyxServer) -> None:
    reply = upload(served, "fine ü.png", b"not really an image", subfolder="sub")
    assert reply.status == 200, reply.body
    assert (directory(served, "input") / "sub" / "fine ü.png").read_bytes() == b"not really an image"
    view = request(served, "GET", "/view?filename=fine%20%C3%BC.png&type=input&subfolder=sub")
    assert view.status == 200 and view.body == b"not really an image"
    preview = request(served, "GET", "/view?filename=fine%20%C3%BC.png&type=input&subfolder=sub&preview=webp")
    assert preview.status == 400 and b"cannot make that view" in preview.body  # stock: 500


@pytest.mark.parametrize("query", [
    "filename=../../etc/passwd", "filename=passwd&subfolder=../../../etc", "filename=x.png&type=bogus",
    "filename=x%00.png",
])
def test_path_traversal_on_view_is_refused(served: ComfyxServer, query: str) -> None:
    reply = request(served, "GET", f"/view?{query}")
    assert reply.status in (400, 403) and b"root:" not in reply.body


@pytest.fixture(scope="module")
def relaxed(comfyui: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ComfyxServer]:
    """Stock engine, raised limits, CORS configured, history in memory."""
    server = start_server(comfyui, tmp_path_factory.mktemp("relaxed"), "stock", ["--enable-cors-header", "*"],
                          comfyx_args=["--max-prompt-bytes", str(24 * MIB), "--max-prompt-depth", "200",
                                       "--no-persist-history"])
    yield server
    server.stop()


def test_history_can_stay_in_memory(relaxed: ComfyxServer) -> None:
    assert worker_alive(relaxed)
    assert not (directory(relaxed, "user") / FILE_NAME).exists()


def test_limits_can_be_raised(relaxed: ComfyxServer) -> None:
    for payload in (big(20 * MIB), {"prompt": quick(), "extra_data": {"x": nested(150)}}):
        reply = post_prompt(relaxed, payload)
        assert reply.status == 200, reply.body[:500]
        assert outcome(wait_for(relaxed, reply.json()["prompt_id"])) == "success"


def test_with_cors_configured_other_origins_are_let_through(relaxed: ComfyxServer) -> None:
    assert post_prompt(relaxed, {"prompt": quick()}, {"Origin": "null"}).status == 200


def test_the_worker_survives_an_executor_failure_and_reports_it(relaxed: ComfyxServer) -> None:
    # ComfyUI's own cache keys recurse through a node's ancestry: on the stock executor a chain of
    # 1,500 nodes raises RecursionError outside any node, which ends stock's prompt worker.
    reply = post_prompt(relaxed, {"prompt": chain(1_500), "client_id": "watcher"})
    assert reply.status == 200
    prompt_id = reply.json()["prompt_id"]
    entry = wait_for(relaxed, prompt_id, 120)
    assert outcome(entry) == "error"
    (error,) = [data for event, data in entry["status"]["messages"] if event == "execution_error"]
    assert error["exception_type"] == "RecursionError" and error["prompt_id"] == prompt_id
    assert worker_alive(relaxed)
