"""Where comfyx keeps its state: one cache directory, one data directory.

Both follow the XDG conventions through platformdirs and can be overridden with
``COMFYX_CACHE_DIR`` / ``COMFYX_DATA_DIR`` (the NixOS module points them at the
unit's CacheDirectory/StateDirectory).
"""

from __future__ import annotations

import os
from pathlib import Path

import platformdirs


def cache_dir() -> Path:
    """Root of comfyx's caches (compile caches, XLA cache, ...)."""
    return Path(os.environ.get("COMFYX_CACHE_DIR") or platformdirs.user_cache_dir("comfyx"))


def data_dir() -> Path:
    """Root of comfyx's persistent data (the ComfyUI checkout installed by ``comfyx comfyui install``)."""
    return Path(os.environ.get("COMFYX_DATA_DIR") or platformdirs.user_data_dir("comfyx"))


def default_comfyui_dir() -> Path:
    """Where ``comfyx comfyui install`` puts ComfyUI when no directory is given."""
    return data_dir() / "ComfyUI"
