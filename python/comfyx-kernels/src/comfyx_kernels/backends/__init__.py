"""Backends register their ops with the registry when imported.

An optional backend that cannot load is marked unavailable with the reason, never raised:
`comfyx doctor` reports it through `list_backends()`.
"""

from __future__ import annotations

import importlib

from ..registry import mark_unavailable


def load_all() -> None:
    from . import eager, eager_blockscaled  # noqa: F401  (always available)

    # (module, backend it registers on): a backend whose module cannot load is unavailable.
    for module, backend in (
        ("triton", "triton"),
        ("triton_blockscaled", "triton"),
        ("cuda", "cuda"),
        ("cublaslt", "cuda"),
    ):
        try:
            importlib.import_module(f"{__name__}.{module}")
        except ImportError as error:
            mark_unavailable(backend, f"cannot import: {error}")
