"""The command lines the Nix packages and the NixOS unit run, against real ComfyUI v0.3.64 and the
comfyx installed here (no Nix store needed): the server starts, honours the flags, and writes
nothing into the ComfyUI directory, which the store keeps read-only."""

from __future__ import annotations

import json
import os
import shlex
import shutil
import socket
import subprocess
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
pytestmark = [pytest.mark.comfyui, pytest.mark.slow]


@pytest.fixture
def comfyui_dir(tmp_path) -> Path:
    """A private copy of COMFYUI_PATH (state of other runs left out), so that nothing else writing
    into the shared checkout can disturb the before/after comparison."""
    path = os.environ.get("COMFYUI_PATH")
    if not path:
        pytest.skip("COMFYUI_PATH is not set: these tests start real ComfyUI v0.3.64 from that checkout")
    copy = tmp_path / "ComfyUI"
    shutil.copytree(path, copy, symlinks=True,
                    ignore=shutil.ignore_patterns("__pycache__", ".git", "user", "temp", "*.db"))
    return copy


@pytest.fixture
def comfyx_exe() -> str:
    exe = shutil.which("comfyx")
    if exe is None:
        pytest.skip("the comfyx command is not installed in this environment (pip install ./python/comfyx)")
    return exe


def snapshot(root: Path) -> set[tuple[str, int, int]]:
    """Every file and directory below root, with size and mtime (bytecode caches left out)."""
    out = set()
    for path in root.rglob("*"):
        if "__pycache__" in path.parts:
            continue
        st = path.lstat()
        out.add((str(path.relative_to(root)), st.st_size if path.is_file() else -1, st.st_mtime_ns))
    return out


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextmanager
def server(argv: list[str], env: dict[str, str], port: int, log: Path) -> Iterator[dict]:
    """Start argv, wait for /system_stats, yield it, then stop the process."""
    with open(log, "w") as out:
        proc = subprocess.Popen(argv, env=env, stdout=out, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 300
        while True:
            if proc.poll() is not None:
                raise AssertionError(f"server exited with {proc.returncode}:\n{log.read_text()[-3000:]}")
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/system_stats", timeout=5) as r:
                    yield json.load(r)
                    break
            except OSError:
                if time.monotonic() > deadline:
                    raise AssertionError(f"no answer on port {port}:\n{log.read_text()[-3000:]}") from None
                time.sleep(1)
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def base_env(tmp_path: Path) -> dict[str, str]:
    # The store is read-only; here the writes Python would make there are turned off instead.
    return {**os.environ, "HOME": str(tmp_path / "home"), "PYTHONDONTWRITEBYTECODE": "1"}


def make_launcher(tmp_path: Path, comfyx_exe: str, comfyui_dir: Path) -> Path:
    """pkgs/comfyui/comfyui.sh with its @placeholders@ filled as the cpu package fills them."""
    text = (REPO / "pkgs" / "comfyui" / "comfyui.sh").read_text()
    for key, value in {"runtimeShell": shutil.which("bash"), "comfyx": comfyx_exe,
                       "comfyui": str(comfyui_dir), "backend": "cpu"}.items():
        text = text.replace(f"@{key}@", value)
    launcher = tmp_path / "comfyui"
    launcher.write_text(text)
    launcher.chmod(0o755)
    return launcher


def test_launcher_keeps_state_outside_comfyui(tmp_path, comfyui_dir, comfyx_exe):
    launcher = make_launcher(tmp_path, comfyx_exe, comfyui_dir)
    data, port = tmp_path / "data", free_port()
    before = snapshot(comfyui_dir)
    env = {**base_env(tmp_path), "COMFYUI_DATA_DIR": str(data)}
    with server([str(launcher), f"--port={port}"], env, port, tmp_path / "log") as stats:
        assert stats["system"]["comfyui_version"] == "0.3.64"
        argv = stats["system"]["argv"]
        assert argv[:2] == [str(comfyui_dir / "main.py"), "--cpu"]
        assert ["--base-directory", str(data)] == argv[2:4]
    assert (data / "user" / "comfyui.db").is_file()
    assert snapshot(comfyui_dir) == before


def test_nixos_unit_command_line_runs(tmp_path, comfyui_dir, comfyx_exe, nixos):
    data, port = tmp_path / "state", free_port()
    r = nixos(f'{{ services.comfyui = {{ enable = true; dataDir = "{data}"; server.port = {port}; '
              'server.cors = true; outputCache.size = 4; models.cache.size = "2GB"; '
              'bmf.workers = 2; hardening.historySize = 50; }; }')
    argv = shlex.split(r["unit"]["serviceConfig"]["ExecStart"])
    argv[0] = str(make_launcher(tmp_path, comfyx_exe, comfyui_dir))  # the package's launcher, as the unit runs it
    env = {**base_env(tmp_path), **r["unit"]["environment"]}
    cache = tmp_path / "cache"  # /var/cache/comfyui in the unit
    env.update(COMFYX_CACHE_DIR=str(cache), XDG_CACHE_HOME=str(cache), HF_HOME=str(cache / "huggingface"),
               HOME=str(data))
    for d in ("custom_nodes", "models"):  # the unit's preStart
        (data / d).mkdir(parents=True, exist_ok=True)
    before = snapshot(comfyui_dir)
    with server(argv, env, port, tmp_path / "log") as stats:
        comfyui_flags = argv[argv.index("--") + 1:]
        assert stats["system"]["argv"][1:] == [
            "--cpu", "--base-directory", str(data), "--user-directory", str(data / "user"),
            "--database-url", f"sqlite:///{data}/user/comfyui.db", *comfyui_flags]
        assert "--cache-lru=4" in comfyui_flags
        req = urllib.request.Request(f"http://127.0.0.1:{port}/system_stats", method="GET")
        with urllib.request.urlopen(req, timeout=5) as resp:
            assert resp.headers["Access-Control-Allow-Origin"] == "*"
    assert (data / "user" / "comfyui.db").is_file()
    assert snapshot(comfyui_dir) == before
