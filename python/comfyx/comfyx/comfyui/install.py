"""Install the pinned ComfyUI for people without Nix: clone, check out, install requirements.

The clone goes to a temporary sibling directory and is renamed into place only when
complete, so an interrupted or failed install leaves nothing half-written behind.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from comfyx import PINNED_COMFYUI_COMMIT, PINNED_COMFYUI_REPO, backends
from comfyx.comfyui.locate import is_checkout, read_checkout

# ComfyUI 0.3.64 imports `requests` without listing it; older transformers pulled it in.
_EXTRA_REQUIREMENTS = ("requests",)


class InstallError(RuntimeError):
    """The install could not be completed; nothing was left in the target directory."""


def install_comfyui(target: Path, repo: str = PINNED_COMFYUI_REPO, requirements: bool = True) -> Path:
    """Clone ComfyUI at the pinned commit into ``target`` and install its requirements."""
    target = target.resolve()
    if target.exists():
        if is_checkout(target) and read_checkout(target).commit == PINNED_COMFYUI_COMMIT:
            if requirements:
                install_requirements(target)
            return target
        raise InstallError(f"{target} already exists and is not ComfyUI at {PINNED_COMFYUI_COMMIT[:8]}; "
                           "choose another directory or remove it")
    if shutil.which("git") is None:
        raise InstallError("git is not installed; it is needed to clone ComfyUI")
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{target.name}.partial-", dir=target.parent))
    try:
        _git("clone", "--quiet", "--no-checkout", repo, str(staging), action=f"clone {repo}")
        _git("-C", str(staging), "checkout", "--quiet", "--detach", PINNED_COMFYUI_COMMIT,
             action=f"check out {PINNED_COMFYUI_COMMIT}")
        if requirements:
            install_requirements(staging)
        staging.rename(target)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return target


def install_requirements(checkout: Path) -> None:
    """pip-install ComfyUI's requirements into the interpreter running comfyx."""
    constraints = [arg for path in backends.pip_constraints() for arg in ("-c", str(path))]
    command = [sys.executable, "-m", "pip", "install", *constraints, "-r", str(checkout / "requirements.txt"),
               *_EXTRA_REQUIREMENTS]
    if subprocess.run(command, check=False).returncode != 0:
        raise InstallError(f"installing ComfyUI's requirements failed: {' '.join(command)}")


def _git(*args: str, action: str) -> None:
    proc = subprocess.run(["git", *args], capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        detail = (proc.stderr.strip().splitlines() or ["no output"])[-1]
        raise InstallError(f"could not {action}: {detail} (offline? --repo URL clones from a mirror)")
