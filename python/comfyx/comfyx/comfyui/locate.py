"""Find a ComfyUI checkout and tell whether it is the release comfyx pins."""

from __future__ import annotations

import logging
import os
import re
from dataclasses import dataclass
from pathlib import Path

from comfyx import PINNED_COMFYUI_COMMIT, PINNED_COMFYUI_VERSION

log = logging.getLogger(__name__)

# Files whose presence makes a directory a ComfyUI checkout.
_MARKERS = ("main.py", "execution.py", "nodes.py", "folder_paths.py", "comfy")


class ComfyUINotFoundError(RuntimeError):
    """No ComfyUI checkout at any of the places comfyx looks."""


@dataclass(frozen=True)
class ComfyUICheckout:
    path: Path
    version: str | None
    commit: str | None

    @property
    def main_py(self) -> Path:
        return self.path / "main.py"

    @property
    def is_pinned(self) -> bool:
        return self.version == PINNED_COMFYUI_VERSION

    def pin_warning(self) -> str | None:
        """A warning for a ComfyUI other than the pinned release, else None."""
        if self.is_pinned:
            return None
        found = self.version or "an unknown version"
        return (
            f"ComfyUI at {self.path} is {found}; comfyx is built and tested against "
            f"v{PINNED_COMFYUI_VERSION} ({PINNED_COMFYUI_COMMIT[:8]}). It may still work."
        )


def is_checkout(path: Path) -> bool:
    return all((path / marker).exists() for marker in _MARKERS)


def read_checkout(path: Path) -> ComfyUICheckout:
    path = path.resolve()
    if not is_checkout(path):
        missing = [m for m in _MARKERS if not (path / m).exists()]
        raise ComfyUINotFoundError(f"{path} is not a ComfyUI checkout (missing: {', '.join(missing)})")
    return ComfyUICheckout(path=path, version=_read_version(path), commit=_read_git_commit(path))


def find_comfyui(explicit: str | os.PathLike[str] | None, default_dir: Path) -> ComfyUICheckout:
    """Find ComfyUI: the explicit directory, then ``COMFYUI_PATH``, then the current
    directory, then ``default_dir`` (where ``comfyx comfyui install`` puts it by default).

    An explicit directory or ``COMFYUI_PATH`` that is not a checkout is an error rather
    than a reason to look elsewhere: the user asked for that one.
    """
    if explicit is not None:
        return read_checkout(Path(explicit))
    env = os.environ.get("COMFYUI_PATH")
    if env:
        try:
            return read_checkout(Path(env))
        except ComfyUINotFoundError as err:
            raise ComfyUINotFoundError(f"COMFYUI_PATH: {err}") from None
    for candidate in (Path.cwd(), default_dir):
        if is_checkout(candidate):
            return read_checkout(candidate)
    raise ComfyUINotFoundError(
        "no ComfyUI checkout found: pass --comfyui DIR, set COMFYUI_PATH, run from a ComfyUI "
        f"directory, or install one with `comfyx comfyui install` (default {default_dir})"
    )


def _read_version(path: Path) -> str | None:
    version_file = path / "comfyui_version.py"
    if not version_file.is_file():
        return None
    match = re.search(r"__version__\s*=\s*[\"']([^\"']+)[\"']", version_file.read_text(encoding="utf-8"))
    return match.group(1) if match else None


def _read_git_commit(path: Path) -> str | None:
    """HEAD's commit, read from the files so that no git binary is needed."""
    git_dir = path / ".git"
    head = git_dir / "HEAD"
    if not head.is_file():
        return None
    ref = head.read_text(encoding="utf-8").strip()
    if not ref.startswith("ref: "):
        return ref or None
    ref_name = ref[5:]
    ref_file = git_dir / ref_name
    if ref_file.is_file():
        return ref_file.read_text(encoding="utf-8").strip()
    packed = git_dir / "packed-refs"
    if packed.is_file():
        for line in packed.read_text(encoding="utf-8").splitlines():
            sha, _, name = line.partition(" ")
            if name == ref_name:
                return sha
    return None
