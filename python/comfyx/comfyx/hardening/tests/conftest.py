"""A hardened `comfyx serve` (the default settings) with ComfyUI's and comfyx's test nodes and the tiny checkpoint."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from comfyx.engine.tests.support import start_server
from comfyx.testing.server import ComfyxServer


@pytest.fixture(scope="module")
def served(comfyui: Path, tiny_models, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ComfyxServer]:
    server = start_server(comfyui, tmp_path_factory.mktemp("hardened"), None,
                          checkpoints=tiny_models.root / "checkpoints")
    yield server
    server.stop()
