"""The request checks, origin rule, history store, atomic writes and patch record on their own (no ComfyUI)."""

from __future__ import annotations

import io
import json
import sqlite3
import types
from pathlib import Path
from typing import Any

import pytest

from comfyx.comfyui.patching import IncompatibleComfyUIError, Patches
from comfyx.hardening import files, intake
from comfyx.hardening.atomic import RenamedOnClose, atomic_av_open, replaced_atomically
from comfyx.hardening.history import HistoryStore
from comfyx.hardening.origin import cross_site_reason


def nested(depth: int) -> object:
    value: object = 0
    for _ in range(depth):
        value = [value]
    return value


def refusal(check, *args) -> intake.PromptRequestError:
    with pytest.raises(intake.PromptRequestError) as raised:
        check(*args)
    return raised.value


@pytest.mark.parametrize(("body", "kind", "message"), [
    (b"", "invalid_json", "empty"),
    (b"   ", "invalid_json", "empty"),
    (b"{nope", "invalid_json", "not valid JSON"),
    (b"\xff\xfe", "invalid_json", "not valid JSON"),
    (b"null", "invalid_prompt_request", "must be a JSON object"),
    (b"[1]", "invalid_prompt_request", "must be a JSON object"),
    (b"[" * 100_000 + b"]" * 100_000, "prompt_too_deep", "more than 64 levels"),
])
def test_bodies_that_are_not_a_json_object_are_refused(body: bytes, kind: str, message: str) -> None:
    error = refusal(intake.parse, body, 64)
    assert error.type == kind and message in error.message


def test_nesting_is_measured_without_recursion() -> None:
    assert intake.nesting_depth(0, 10) == 0
    assert intake.nesting_depth({"a": [1, {"b": 2}]}, 10) == 3
    assert intake.nesting_depth(nested(100_000), 64) == 65  # stops counting past the limit
    assert intake.parse(json.dumps({"x": nested(62)}).encode(), 64)  # 64 levels with the outer object
    assert refusal(intake.parse, json.dumps({"x": nested(64)}).encode(), 64).type == "prompt_too_deep"


def test_size_limit() -> None:
    intake.check_size(1024, 1024)
    error = refusal(intake.check_size, 1025, 1024)
    assert error.type == "prompt_too_large" and "--max-prompt-bytes" in error.details


@pytest.mark.parametrize(("data", "field"), [
    ({"number": "abc"}, "number"),
    ({"number": True}, "number"),
    ({"number": float("inf")}, "number"),
    ({"extra_data": 5}, "extra_data"),
    ({"extra_data": "garbage"}, "extra_data"),
    ({"extra_data": {"client_id": ["x"]}}, "extra_data.client_id"),
    ({"client_id": 7}, "client_id"),
    ({"prompt_id": ""}, "prompt_id"),
    ({"prompt_id": "x" * 257}, "prompt_id"),
    ({"partial_execution_targets": "1"}, "partial_execution_targets"),
    ({"prompt": [1]}, "prompt"),
    ({"prompt": {"1": 5}}, "node '1'"),
    ({"prompt": {"1": {"inputs": {}}}}, "node '1': class_type"),
    ({"prompt": {"1": {"class_type": "X", "inputs": [1]}}}, "node '1': inputs"),
])
def test_fields_comfyui_reads_must_have_its_types(data: dict, field: str) -> None:
    error = refusal(intake.check_fields, data)
    assert error.extra_info == {"field": field}
    assert error.message.startswith(f"{field} must be")


def test_node_ids_are_not_empty_and_bounded() -> None:
    assert refusal(intake.check_prompt, {"": {"class_type": "X", "inputs": {}}}).type == "invalid_prompt"
    assert refusal(intake.check_prompt, {"x" * 300: {"class_type": "X", "inputs": {}}}).type == "invalid_prompt"
    intake.check_prompt({"ü 1.a:b": {"class_type": "X", "inputs": {}}})


def test_content_types() -> None:
    for accepted in ("", "application/json", "text/plain", "application/x-www-form-urlencoded", "application/ld+json"):
        intake.check_content_type(accepted)
    assert refusal(intake.check_content_type, "multipart/form-data").type == "invalid_content_type"


@pytest.mark.parametrize(("headers", "refused"), [
    ({}, None),
    ({"Host": "127.0.0.1:8188"}, None),
    ({"Host": "127.0.0.1:8188", "Origin": "http://127.0.0.1:8188"}, None),
    ({"Host": "comfy.example:443", "Origin": "https://comfy.example"}, None),  # no port on one side: names only
    ({"Host": "127.0.0.1:8188", "Origin": "null"}, "Origin: null"),
    ({"Origin": "null"}, "Origin: null"),
    ({"Host": "127.0.0.1:8188", "Origin": "http://evil.example"}, "another site"),
    ({"Host": "192.168.1.5:8188", "Origin": "http://evil.example"}, "another site"),  # ComfyUI: loopback only
    ({"Host": "127.0.0.1:8188", "Origin": "http://127.0.0.1:9999"}, "another site"),
    ({"Host": "127.0.0.1:8188", "Origin": "http://127.0.0.1:99999"}, "not a valid origin"),
])
def test_requests_from_other_sites(headers: dict, refused: str | None) -> None:
    reason = cross_site_reason(headers)
    assert (reason is None) if refused is None else (refused in reason)


@pytest.mark.parametrize(("name", "refused"), [
    ("cat.png", None), ("a b ü.png", None), ("", "missing"), (".", "plain name"), ("..", "plain name"),
    ("a/b.png", "plain name"), ("..\\x.png", "plain name"), ("x\x00.png", "control"), ("x" * 300, "bytes long"),
])
def test_upload_names(name: str, refused: str | None) -> None:
    problem = files.name_problem(name)
    assert (problem is None) if refused is None else (refused in problem)


def test_upload_forms() -> None:
    image = types.SimpleNamespace(file=object(), filename="cat.png")
    assert files.upload_problem({"image": image}, mask=False) is None
    assert "must be a file" in files.upload_problem({"image": "text"}, mask=False)
    assert "type 'x'" in files.upload_problem({"image": image, "type": "x"}, mask=False)
    assert "stay inside" in files.upload_problem({"image": image, "subfolder": "a/../../b"}, mask=False)
    assert "original_ref" in files.upload_problem({"image": image}, mask=True)
    ref = json.dumps({"filename": "cat.png [output]", "type": "output"})
    assert files.upload_problem({"image": image, "original_ref": ref}, mask=True) is None
    ref = json.dumps({"filename": "../cat.png"})
    assert "plain name" in files.upload_problem({"image": image, "original_ref": ref}, mask=True)


def test_view_queries() -> None:
    assert files.view_problem({}) is None
    assert files.view_problem({"filename": "a.png [output]", "subfolder": "x/y"}) is None
    assert "control" in files.view_problem({"filename": "a\x00.png"})
    assert "type" in files.view_problem({"filename": "a.png", "type": "models"})


def test_history_store_keeps_the_newest_entries_across_openings(tmp_path: Path) -> None:
    path = tmp_path / "history.sqlite3"
    store = HistoryStore(path, size=3)
    for i in range(5):
        store.save(f"p{i}", {"prompt": [i, f"p{i}"], "outputs": {}, "status": {"status_str": "success"}})
    store.delete(["p3"])
    store.save("p1", {"replaced": True})  # not kept: p1 was dropped as the oldest
    assert list(HistoryStore(path, size=3).load()) == ["p2", "p4", "p1"]
    assert HistoryStore(path, size=2).load() == {"p4": {"prompt": [4, "p4"], "outputs": {},
                                                        "status": {"status_str": "success"}}, "p1": {"replaced": True}}
    store.clear()
    assert HistoryStore(path, size=3).load() == {}


def test_history_store_keeps_what_is_not_json_as_text(tmp_path: Path) -> None:
    store = HistoryStore(tmp_path / "h.sqlite3", size=3)
    store.save("p", {"outputs": {"1": {"value": [object]}}})
    assert store.load()["p"]["outputs"]["1"]["value"] == ["<class 'object'>"]


def test_a_file_that_is_not_a_database_is_moved_aside(tmp_path: Path) -> None:
    path = tmp_path / "history.sqlite3"
    path.write_bytes(b"not a database, " * 100)
    store = HistoryStore(path, size=3)
    store.save("p", {"ok": True})
    assert store.load() == {"p": {"ok": True}}
    (aside,) = tmp_path.glob("history.sqlite3.corrupt-*")
    assert aside.read_bytes().startswith(b"not a database")
    with pytest.raises(sqlite3.DatabaseError):
        sqlite3.connect(aside).execute("SELECT 1 FROM sqlite_master").fetchall()


def test_an_atomic_write_leaves_the_whole_file_or_nothing(tmp_path: Path) -> None:
    target = tmp_path / "out.png"
    with replaced_atomically(str(target)) as partial:
        Path(partial).write_bytes(b"complete")
        assert not target.exists()
    assert target.read_bytes() == b"complete"
    with pytest.raises(OSError), replaced_atomically(str(tmp_path / "never.png")) as partial:
        Path(partial).write_bytes(b"half")
        raise OSError("disk full")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.png"]


def test_patches_check_signatures_and_undo_in_reverse() -> None:
    def original(prompt_id, prompt, item, validated):
        return "original"

    owner = types.SimpleNamespace(validate=original)
    patches = Patches()
    assert patches.replace(owner, "validate", lambda *a: "first", "(prompt_id, prompt, item, validated)") is original
    patches.replace(owner, "validate", lambda *a: "second")
    assert owner.validate() == "second"
    with pytest.raises(IncompatibleComfyUIError, match=r"takes \(\*a\); .* written for \(x\)"):
        patches.replace(owner, "validate", lambda: None, "(x)")
    patches.undo()
    assert owner.validate is original


def _write_frames(output: Any, count: int) -> None:
    import av
    import numpy

    stream = output.add_stream("mpeg4", rate=8)
    stream.width, stream.height, stream.pix_fmt = 32, 32, "yuv420p"
    for index in range(count):
        frame = av.VideoFrame.from_ndarray(numpy.full((32, 32, 3), index * 20, numpy.uint8), format="rgb24")
        output.mux(stream.encode(frame))
    output.mux(stream.encode(None))


def test_a_video_written_through_av_open_appears_whole_when_closed(tmp_path: Path) -> None:
    av = pytest.importorskip("av")
    target = tmp_path / "clip.mp4"
    with atomic_av_open(av.open)(str(target), mode="w") as output:
        _write_frames(output, 6)
        assert not target.exists()
        assert [p.name.endswith(".partial.mp4") for p in tmp_path.iterdir()] == [True]
    with av.open(str(target)) as written:
        assert sum(1 for _ in written.decode(video=0)) == 6
    assert list(tmp_path.iterdir()) == [target]


def test_a_video_save_that_raises_leaves_nothing_and_close_renames(tmp_path: Path) -> None:
    av = pytest.importorskip("av")
    opened = atomic_av_open(av.open)
    with pytest.raises(RuntimeError, match="encoder failed"), opened(str(tmp_path / "never.mp4"), "w") as output:
        _write_frames(output, 2)
        raise RuntimeError("encoder failed")
    assert list(tmp_path.iterdir()) == []
    output = opened(str(tmp_path / "closed.mp4"), "w")  # SaveWEBM's way: close() without a with block
    _write_frames(output, 2)
    output.close()
    assert [p.name for p in tmp_path.iterdir()] == ["closed.mp4"]


def test_reading_and_writing_to_memory_go_to_av_open_unchanged(tmp_path: Path) -> None:
    av = pytest.importorskip("av")
    buffer = io.BytesIO()
    with atomic_av_open(av.open)(buffer, mode="w", format="mp4") as output:
        assert not isinstance(output, RenamedOnClose)
        _write_frames(output, 2)
    (tmp_path / "clip.mp4").write_bytes(buffer.getvalue())
    with atomic_av_open(av.open)(str(tmp_path / "clip.mp4")) as read:
        assert not isinstance(read, RenamedOnClose) and len(read.streams.video) == 1
