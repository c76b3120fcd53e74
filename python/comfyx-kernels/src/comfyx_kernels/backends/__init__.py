"""Backends register their ops with the registry when imported.

An optional backend that cannot load is marked unavailable with the reason, never raised:
`comfyx doctor` reports it through `list_backends()`.
"""

from __future__ import annotations

import importlib

from ..registry import mark_unavailable


def load_all() -> None:
    from . import eager, eager_blockscaled  # noqa: F401  (always available)

    for name in ("triton", "cuda"):
        try:
            importlib.import_module(f"{__name__}.{name}")
        except ImportError as error:
            mark_unavailable(name, f"cannot import: {error}")
