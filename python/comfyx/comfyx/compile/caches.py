"""torch's own compile caches, kept in comfyx's cache directory so they survive restarts.

Three layers, all torch's or Triton's: inductor's FX graph cache (compiled graphs and
autotuning results, under ``TORCHINDUCTOR_CACHE_DIR``), Triton's kernel cache (PTX and
cubins, under ``TRITON_CACHE_DIR``) and torch's portable cache artifacts
(``torch.compiler.save_cache_artifacts`` / ``load_cache_artifacts``), saved after a
compile and loaded before the next process compiles the same model with the same plan.
"""

from __future__ import annotations

import hashlib
import logging
import os
from dataclasses import dataclass
from pathlib import Path

import torch

from comfyx.paths import cache_dir

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class CacheDirs:
    inductor: Path
    triton: Path
    artifacts: Path


def compile_cache_root() -> Path:
    return cache_dir() / "compile"


def configure(ptx_cache_dir: str = "") -> CacheDirs:
    """Point inductor's and Triton's caches at comfyx's cache directory.

    Variables the user set win (``ptx_cache_dir`` wins over ``TRITON_CACHE_DIR``). Runs
    before each compile this package starts.
    """
    root = compile_cache_root()
    if not _user_chose_inductor_dir():
        os.environ["TORCHINDUCTOR_CACHE_DIR"] = str(root / "inductor")
    if ptx_cache_dir:
        os.environ["TRITON_CACHE_DIR"] = str(Path(ptx_cache_dir).expanduser())
    elif not os.environ.get("TRITON_CACHE_DIR"):
        os.environ["TRITON_CACHE_DIR"] = str(root / "triton")
    dirs = CacheDirs(
        Path(os.environ["TORCHINDUCTOR_CACHE_DIR"]), Path(os.environ["TRITON_CACHE_DIR"]), root / "artifacts"
    )
    for path in (dirs.inductor, dirs.triton, dirs.artifacts):
        path.mkdir(parents=True, exist_ok=True)
    return dirs


def _user_chose_inductor_dir() -> bool:
    # Importing torch._inductor.config writes torch's default (a per-user temporary
    # directory) into TORCHINDUCTOR_CACHE_DIR, so that value alone does not mean the user
    # chose it. torch reads the variable on every cache access: replacing it is enough.
    value = os.environ.get("TORCHINDUCTOR_CACHE_DIR")
    if not value:
        return False
    try:
        from torch._inductor.runtime.cache_dir_utils import default_cache_dir
    except ImportError:  # a torch without the helper: trust the variable
        return True
    return os.path.abspath(value) != os.path.abspath(default_cache_dir())


def artifact_path(dirs: CacheDirs, identity: str) -> Path:
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
