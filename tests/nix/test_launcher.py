"""pkgs/comfyui/comfyui.sh, the `comfyui` program of every package (what `nix run` starts):
state goes under the data and cache directories, never next to ComfyUI."""

from __future__ import annotations

import os
import stat
import subprocess
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def launcher(tmp_path: Path) -> Path:
    """The script with its @placeholders@ filled as replaceVars would, comfyx replaced by a
    stand-in that prints its arguments and the variables it was given."""
    fake = tmp_path / "comfyx"
    fake.write_text('#!/bin/sh\nprintf "%s\\n" "$@"\necho "CACHE=$COMFYX_CACHE_DIR"\n'
                    'echo "TRITON=$TRITON_CACHE_DIR"\necho "INDUCTOR=$TORCHINDUCTOR_CACHE_DIR"\n')
    fake.chmod(fake.stat().st_mode | stat.S_IEXEC)
    text = (REPO / "pkgs" / "comfyui" / "comfyui.sh").read_text()
    for key, value in {"runtimeShell": "/bin/bash", "comfyx": str(fake), "comfyui": "/store/comfyui",
                       "backend": "cpu", "engine": "stock"}.items():
        text = text.replace(f"@{key}@", value)
    assert "@" not in text.replace("$@", "").replace("[@]", "")
    script = tmp_path / "comfyui"
    script.write_text(text)
    script.chmod(0o755)
    return script


def run(script: Path, env: dict[str, str], *args: str) -> list[str]:
    base = {"PATH": os.environ["PATH"]}
    return subprocess.run([str(script), *args], env={**base, **env}, capture_output=True, text=True,
                          check=True).stdout.splitlines()


def test_state_under_xdg_directories(tmp_path):
    home = tmp_path / "home"
    out = run(launcher(tmp_path), {"HOME": str(home)}, "--port", "9000")
    data = home / ".local/share/comfyui"
    cache = home / ".cache/comfyx"
    assert out[:8] == ["serve", "--comfyui", "/store/comfyui", "--backend", "cpu", "--engine", "stock", "--"]
    assert out[8:14] == ["--base-directory", str(data), "--user-directory", str(data / "user"),
                         "--database-url", f"sqlite:///{data}/user/comfyui.db"]
    assert out[14:16] == ["--port", "9000"]  # the user's flags come last
    assert f"CACHE={cache}" in out and f"TRITON={cache}/triton" in out and f"INDUCTOR={cache}/inductor" in out
    for d in ("user", "models", "custom_nodes", "input", "output", "temp"):
        assert (data / d).is_dir(), d


def test_overrides(tmp_path):
    data, cache = tmp_path / "data", tmp_path / "cache"
    out = run(launcher(tmp_path), {"HOME": str(tmp_path), "COMFYUI_DATA_DIR": str(data),
                                   "COMFYX_CACHE_DIR": str(cache), "COMFYX_BACKEND": "cuda",
                                   "COMFYX_ENGINE": "bmf"})
    assert out[out.index("--backend") + 1] == "cuda"
    assert out[out.index("--engine") + 1] == "bmf"
    assert out[out.index("--base-directory") + 1] == str(data)
    assert f"CACHE={cache}" in out
    assert (data / "user").is_dir()


def test_comfyx_flags_before_a_double_dash(tmp_path):
    out = run(launcher(tmp_path), {"HOME": str(tmp_path)}, "--fast", "--quantize-layers", "all", "--", "--port", "9")
    assert out[:10] == ["serve", "--comfyui", "/store/comfyui", "--backend", "cpu", "--engine", "stock", "--fast",
                        "--quantize-layers", "all"]
    assert out[10] == "--" and out[17:19] == ["--port", "9"]
