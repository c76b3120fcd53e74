"""Fixtures for engine tests that run real ComfyUI servers (stock and BMF engine side by side)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from comfyx.engine.tests.support import CACHE_MODES, start_server


class Engines(dict):
    """``{"stock": server, "bmf": server}`` started with one cache mode (``.mode``)."""

    mode: str


@pytest.fixture(scope="module", params=list(CACHE_MODES))
def engines(request: pytest.FixtureRequest, comfyui: Path,
            tmp_path_factory: pytest.TempPathFactory) -> Iterator[Engines]:
    """A stock and a BMF-engine server with the same cache mode (classic, --cache-lru 10, --cache-none)."""
    servers = Engines()
    servers.mode = request.param
    root = tmp_path_factory.mktemp(f"engines-{request.param}")
    try:
        for engine in ("stock", "bmf"):
            # every progress_state message, as stock sends them, so that their sequences can be compared
            servers[engine] = start_server(comfyui, root / engine, engine, CACHE_MODES[request.param],
                                           comfyx_args=["--bmf-progress-interval", "0"])
        yield servers
    finally:
        for server in servers.values():
            server.stop()


@pytest.fixture(scope="module")
def bmf(comfyui: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator:
    """A BMF-engine server with the test nodes, shared by a module's tests."""
    server = start_server(comfyui, tmp_path_factory.mktemp("bmf"), "bmf")
    yield server
    server.stop()
