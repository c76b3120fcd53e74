"""Signals, restarts and files: `comfyx serve` stops in order, keeps its history, never leaves half an output file."""

from __future__ import annotations

import signal
import subprocess
import time
from pathlib import Path

import pytest

from comfyx.engine.tests.support import start_server
from comfyx.hardening.history import FILE_NAME
from comfyx.hardening.tests.abuse import (
    big_save,
    directory,
    history,
    outcome,
    post_prompt,
    post_until_node_runs,
    quick,
    sleepy,
    video_saves,
    wait_for,
    wait_for_partial,
    wait_running,
    whole_pngs,
)
from comfyx.testing.server import ComfyxServer

pytestmark = [pytest.mark.comfyui, pytest.mark.slow]


def stop_with(server: ComfyxServer, number: int, timeout: float = 60) -> tuple[int, float]:
    """Send signal ``number``; the exit status and the seconds it took."""
    sent = time.monotonic()
    server.process.send_signal(number)
    try:
        status = server.process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        pytest.fail(f"no exit within {timeout} s of {signal.Signals(number).name}:\n{server.log_tail()}")
    return status, time.monotonic() - sent


def messages(entry: dict) -> dict:
    return dict(entry["status"]["messages"])


def test_sigterm_stops_at_the_next_node_and_the_history_survives_the_restart(comfyui: Path, tmp_path: Path) -> None:
    # stock: SIGTERM kills it mid-node, and the history is gone on restart
    server = start_server(comfyui, tmp_path, None, comfyx_args=["--history-size", "4"])
    try:
        done = [post_prompt(server, {"prompt": quick(8 + i)}).json()["prompt_id"] for i in range(2)]
        for prompt_id in done:
            assert outcome(wait_for(server, prompt_id)) == "success"
        running = post_prompt(server, {"prompt": sleepy(20, 0.5)}).json()["prompt_id"]
        assert wait_running(server, running)
        queued = [post_prompt(server, {"prompt": quick()}).json()["prompt_id"] for _ in range(2)]
        status, seconds = stop_with(server, signal.SIGTERM)
        assert status == 0 and seconds < 10, server.log_tail()
        assert "Stopped server" in server.log_tail()
    finally:
        server.stop()
    assert (directory(server, "user") / FILE_NAME).is_file()

    again = start_server(comfyui, tmp_path, None, comfyx_args=["--history-size", "4"])
    try:
        entries = history(again)
        assert set(entries) == {done[1], running, *queued}  # four kept: the oldest went
        assert outcome(entries[done[1]]) == "success"
        assert outcome(entries[running]) == "interrupted"
        for prompt_id in queued:
            error = messages(entries[prompt_id])["execution_error"]
            assert error["exception_message"] == "not run: comfyx serve received SIGTERM and shut down"
        assert outcome(wait_for(again, post_prompt(again, {"prompt": quick()}).json()["prompt_id"])) == "success"
    finally:
        again.stop()


def test_sigint_with_a_node_that_never_stops_exits_0_in_bounded_time(comfyui: Path, tmp_path: Path) -> None:
    # stock: Ctrl-C mid-run can abort the process (rc -6)
    server = start_server(comfyui, tmp_path, None, comfyx_args=["--shutdown-timeout", "2"])
    try:
        stuck = post_until_node_runs(server, sleepy(1, 60.0), "1")
        status, seconds = stop_with(server, signal.SIGINT)
        assert status == 0 and 2 <= seconds < 10, server.log_tail()
        assert f"prompt {stuck} did not stop within 2 s of SIGINT" in server.log_tail()
    finally:
        server.stop()
    again = start_server(comfyui, tmp_path, None)
    try:
        error = messages(history(again, stuck)[stuck])["execution_error"]
        assert error["exception_message"] == ("interrupted: comfyx serve received SIGINT and the prompt did not stop "
                                              "within 2 s")
    finally:
        again.stop()


@pytest.mark.parametrize("number", [signal.SIGTERM, signal.SIGKILL])
def test_a_save_stopped_by_a_signal_leaves_the_whole_png_or_none(comfyui: Path, tmp_path: Path, number: int) -> None:
    # stock: a truncated PNG under the final name
    server = start_server(comfyui, tmp_path, None)
    try:
        output = directory(server, "output")
        prompt_id = post_prompt(server, {"prompt": big_save("big")}).json()["prompt_id"]
        assert wait_for_partial(output, "big_00001_.png"), server.log_tail()
        assert not (output / "big_00001_.png").exists()  # written under a hidden name first
        status, _ = stop_with(server, number)
    finally:
        server.stop()
    if number == signal.SIGTERM:  # the running node finishes: the save is whole and reported
        assert status == 0
        assert whole_pngs(output) == (["big_00001_.png"], [])
        assert not list(output.glob(".*.partial"))
        again = start_server(comfyui, tmp_path, None)
        try:
            entry = history(again, prompt_id)[prompt_id]
            assert entry["outputs"]["2"]["images"][0]["filename"] == "big_00001_.png"
        finally:
            again.stop()
    else:
        assert status == -signal.SIGKILL
        assert whole_pngs(output) == ([], [])  # only the hidden partial file, never a truncated PNG


def test_both_video_savers_write_whole_files_through_partial_names(comfyui: Path, tmp_path: Path) -> None:
    import av

    server = start_server(comfyui, tmp_path, None)
    try:
        output = directory(server, "output")
        prompt_id = post_prompt(server, {"prompt": video_saves("clip")}).json()["prompt_id"]
        assert outcome(wait_for(server, prompt_id)) == "success", server.log_tail()
    finally:
        server.stop()
    files = sorted(path.relative_to(output).as_posix() for path in output.rglob("*") if path.is_file())
    assert files == ["clip_00001_.webm", "clip_h264_00001_.mp4"]  # nothing hidden left behind
    for name in files:
        with av.open(str(output / name)) as video:
            assert sum(1 for _ in video.decode(video=0)) == 8


def test_a_video_save_stopped_by_sigkill_leaves_no_file_under_its_name(comfyui: Path, tmp_path: Path) -> None:
    # stock: a truncated WEBM under the final name
    server = start_server(comfyui, tmp_path, None)
    try:
        output = directory(server, "output")
        prompt = video_saves("long", size=512, frames=240)
        del prompt["3"], prompt["4"]
        post_prompt(server, {"prompt": prompt})
        assert wait_for_partial(output, "long_00001_.webm"), server.log_tail()
        assert stop_with(server, signal.SIGKILL)[0] == -signal.SIGKILL
    finally:
        server.stop()
    left = [path.name for path in output.iterdir()]
    assert len(left) == 1 and left[0].startswith(".long_00001_.webm.") and left[0].endswith(".partial.webm"), left
