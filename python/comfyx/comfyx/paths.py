"""Where comfyx keeps its state: one cache directory, one data directory, and the compile caches in the first.

Both directories are settings (``--cache-dir`` / ``COMFYX_CACHE_DIR``, ``--data-dir`` /
``COMFYX_DATA_DIR``), by default the XDG ones (platformdirs). The cache directory holds the
compile caches (inductor's, Triton's, torch's portable artifacts) and torch_xla's; the data
directory holds the ComfyUI checkout ``comfyx comfyui install`` makes. Torch and Triton read their
own variables (``TORCHINDUCTOR_CACHE_DIR``, ``TRITON_CACHE_DIR``): one the user set wins, the
others are pointed into the cache directory once, at start-up (:func:`export_compile_caches`).
"""

from __future__ import annotations

import argparse
import getpass
import os
import re
import tempfile
from collections.abc import Mapping, MutableMapping
from dataclasses import dataclass, field
from pathlib import Path

import platformdirs

from comfyx.settings.spec import DIRECTORY, Group, Setting, read


@dataclass(frozen=True)
class PathSettings:
    cache_dir: Path = field(default_factory=lambda: Path(platformdirs.user_cache_dir("comfyx")))
    data_dir: Path = field(default_factory=lambda: Path(platformdirs.user_data_dir("comfyx")))

    @property
    def default_comfyui_dir(self) -> Path:
        """Where ``comfyx comfyui install`` puts ComfyUI when no directory is given."""
        return self.data_dir / "ComfyUI"

    @property
    def calibration(self) -> Path:
        """fp8 layers' calibrated activation scales, per model (comfyx.kernels.calibrate.CalibrationStore)."""
        return self.cache_dir / "calibration"

    @property
    def xla_cache(self) -> Path:
        """torch_xla's persistent compilation cache (``--tpu-compilation-cache``)."""
        return self.cache_dir / "xla"


GROUP = Group("paths", "directories", (
    Setting("cache_dir", "--cache-dir", DIRECTORY, "comfyx's caches: compile caches (inductor, Triton, "
            "torch's artifacts), fp8 layers' calibrated activation scales and torch_xla's; the NixOS unit's is "
            "/var/cache/comfyui",
            default_text="$XDG_CACHE_HOME/comfyx"),
    Setting("data_dir", "--data-dir", DIRECTORY, "comfyx's data: the ComfyUI checkout `comfyx comfyui install` "
            "makes, found by serve and run when no other is given", default_text="$XDG_DATA_HOME/comfyx"),
), commands=("serve", "run", "doctor", "comfyui", "bench"))


def from_args(args: argparse.Namespace, environ: Mapping[str, str]) -> PathSettings:
    """The directories from their flags, else their variables, else XDG's: for the commands that take no other
    setting (``comfyx comfyui install``, ``comfyx bench``)."""
    return PathSettings(**read(GROUP, args, environ, []))

INDUCTOR_ENV = "TORCHINDUCTOR_CACHE_DIR"
TRITON_ENV = "TRITON_CACHE_DIR"


@dataclass(frozen=True)
class CompileCaches:
    """The compile caches of this process: inductor's FX graphs, Triton's kernels, torch's portable artifacts,
    Dynamo's traces of models compiled whole (comfyx.compile.traces)."""

    inductor: Path
    triton: Path
    artifacts: Path
    traces: Path

    @classmethod
    def resolve(cls, cache_dir: Path, environ: Mapping[str, str]) -> CompileCaches:
        """Below ``cache_dir/compile``, unless the user named inductor's or Triton's directory."""
        root = cache_dir / "compile"
        inductor = environ.get(INDUCTOR_ENV, "")
        if not inductor or _is_torch_default(inductor):
            inductor = str(root / "inductor")
        return cls(Path(inductor), Path(environ.get(TRITON_ENV) or root / "triton"), root / "artifacts",
                   root / "traces")


def export_compile_caches(caches: CompileCaches, environ: MutableMapping[str, str]) -> None:
    """Tell torch and Triton (which read these variables themselves) where their caches are."""
    environ[INDUCTOR_ENV] = str(caches.inductor)
    environ[TRITON_ENV] = str(caches.triton)


def _is_torch_default(value: str) -> bool:
    # Importing torch._inductor.config writes torch's default (a per-user temporary directory) into
    # TORCHINDUCTOR_CACHE_DIR, and child processes inherit it: that value is not the user's choice.
    # torch._inductor.runtime.cache_dir_utils.default_cache_dir, without importing torch (comfyx
    # starts before ComfyUI's main.py, which must be the first to import torch).
    user = re.sub(r'[\\/:*?"<>|]', "_", getpass.getuser())
    return os.path.abspath(value) == os.path.abspath(os.path.join(tempfile.gettempdir(), "torchinductor_" + user))
