"""pkgs/comfyui/comfyui.sh, the `comfyui` program of every package (what `nix run` starts, and the NixOS and
Home Manager services run): state goes under the data directory, never next to ComfyUI; comfyx's settings
reach comfyx as its own flags or variables, once."""

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
    fake.write_text('#!/bin/sh\nprintf "%s\\n" "$@"\necho "BACKEND=$COMFYX_BACKEND"\n')
    fake.chmod(fake.stat().st_mode | stat.S_IEXEC)
    text = (REPO / "pkgs" / "comfyui" / "comfyui.sh").read_text()
    for key, value in {"runtimeShell": "/bin/bash", "comfyx": str(fake), "comfyui": "/store/comfyui",
                       "backend": "cpu"}.items():
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
    assert out[:4] == ["serve", "--comfyui", "/store/comfyui", "--"]
    assert out[4:10] == ["--base-directory", str(data), "--user-directory", str(data / "user"),
                         "--database-url", f"sqlite:///{data}/user/comfyui.db"]
    assert out[10:12] == ["--port", "9000"]  # the user's flags come last
    assert "BACKEND=cpu" in out  # the package's backend is comfyx's default here
    for d in ("user", "models", "custom_nodes", "input", "output", "temp"):
        assert (data / d).is_dir(), d
    assert not (home / ".cache").exists()  # comfyx makes its cache directory when it needs it


def test_overrides(tmp_path):
    data = tmp_path / "data"
    out = run(launcher(tmp_path), {"HOME": str(tmp_path), "COMFYUI_DATA_DIR": str(data), "COMFYX_BACKEND": "cuda"})
    assert "BACKEND=cuda" in out and "--backend" not in out  # one channel: comfyx reads its variable
    assert out[out.index("--base-directory") + 1] == str(data)
    assert (data / "user").is_dir()


def test_comfyx_flags_before_a_double_dash(tmp_path):
    out = run(launcher(tmp_path), {"HOME": str(tmp_path)}, "--fast", "--quantize-layers", "all", "--", "--port", "9")
    assert out[:7] == ["serve", "--comfyui", "/store/comfyui", "--fast", "--quantize-layers", "all", "--"]
    assert out[13:15] == ["--port", "9"]
