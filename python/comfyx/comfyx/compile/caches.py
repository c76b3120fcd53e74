"""torch's own compile caches, kept in comfyx's cache directory so they survive restarts.

Three layers, all torch's or Triton's: inductor's FX graph cache (compiled graphs and
autotuning results), Triton's kernel cache (PTX and cubins) and torch's portable cache
artifacts (``torch.compiler.save_cache_artifacts`` / ``load_cache_artifacts``), saved after a
compile and loaded before the next process compiles the same model with the same plan. Where
they are is decided once, at start-up (:class:`comfyx.paths.CompileCaches`, which also tells
torch and Triton); a compile only makes the directories.
"""

from __future__ import annotations

import hashlib
import logging
from pathlib import Path

import torch

from comfyx.paths import CompileCaches

log = logging.getLogger(__name__)


def ensure(caches: CompileCaches) -> None:
    """Make the cache directories (torch and Triton make theirs too, but only when they first write)."""
    for path in (caches.inductor, caches.triton, caches.artifacts, caches.traces):
        path.mkdir(parents=True, exist_ok=True)


def artifact_path(dirs: CompileCaches, identity: str) -> Path:
    """One artifact file per (torch build, device, model class, compile plan)."""
    device = torch.cuda.get_device_name() if torch.cuda.is_available() else "cpu"
    digest = hashlib.sha256(f"{torch.__version__}|{device}|{identity}".encode()).hexdigest()[:24]
    return dirs.artifacts / f"{digest}.bin"


def load_artifacts(path: Path) -> int:
    """Load saved cache artifacts into torch's caches; returns how many were loaded."""
    if not path.is_file() or not hasattr(torch.compiler, "load_cache_artifacts"):
        return 0
    try:
        info = torch.compiler.load_cache_artifacts(path.read_bytes())
    except Exception as error:  # noqa: BLE001 - a stale or truncated file must not stop the compile
        log.warning("comfyx compile: ignoring unreadable cache artifacts %s: %s", path, error)
        return 0
    loaded = _artifact_count(info)
    log.info("comfyx compile: loaded %d cache artifacts from %s", loaded, path)
    return loaded


def save_artifacts(path: Path) -> int:
    """Save the artifacts this process compiled or loaded so far; returns how many."""
    if not hasattr(torch.compiler, "save_cache_artifacts"):
        return 0
    saved = torch.compiler.save_cache_artifacts()
    if saved is None:
        return 0
    data, info = saved
    partial = path.with_name(path.name + ".partial")
    partial.write_bytes(data)
    partial.replace(path)  # atomic: a crash leaves the old file, never half a new one
    return _artifact_count(info)


def _artifact_count(info: object) -> int:
    # CacheInfo keeps one list of keys per artifact kind
    if info is None:
        return 0
    lists = getattr(info, "artifacts", None)
    if isinstance(lists, dict):
        return sum(len(keys) for keys in lists.values())
    return 0


def count_triton_kernels(triton_dir: Path) -> int:
    """Compiled kernels in Triton's cache (one cubin each)."""
    return sum(1 for _ in triton_dir.rglob("*.cubin")) if triton_dir.is_dir() else 0
