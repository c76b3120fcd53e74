"""pytest fixtures that run real ComfyUI (loaded by the repository's root conftest.py)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from comfyx.testing.server import ComfyxServer, comfyx_command
from comfyx.testing.workflows import TINY_CHECKPOINT

NO_COMFYUI = "COMFYUI_PATH is not set: tests that run real ComfyUI need a v0.3.64 checkout there"


def pytest_configure(config: pytest.Config) -> None:
    # A background job (`cmd &` in a script, nohup) starts with SIGINT ignored, and its children
    # inherit that: the tests that press Ctrl-C on a comfyx process would then test nothing. A
    # handled SIGINT here is reset to the default in every child it starts, as in a terminal.
    if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
        signal.signal(signal.SIGINT, signal.default_int_handler)


@pytest.fixture(scope="session")
def comfyui() -> Path:
    """The real ComfyUI checkout named by ``COMFYUI_PATH`` (skips the test when unset)."""
    path = os.environ.get("COMFYUI_PATH")
    if not path:
        pytest.skip(NO_COMFYUI)
    if not (Path(path) / "main.py").is_file():
        pytest.fail(f"COMFYUI_PATH={path} is not a ComfyUI checkout (no main.py)")
    return Path(path).resolve()


@dataclass(frozen=True)
class ModelDir:
    """A models directory holding the tiny checkpoint, and the ComfyUI config that points at it."""

    root: Path
    extra_model_paths: Path
    checkpoint: str = TINY_CHECKPOINT

    def comfyui_args(self) -> list[str]:
        return ["--extra-model-paths-config", str(self.extra_model_paths)]


@pytest.fixture(scope="session")
def tiny_models(comfyui: Path, tmp_path_factory: pytest.TempPathFactory, request: pytest.FixtureRequest) -> ModelDir:
    """The tiny SD1.5-architecture checkpoint, generated once and kept in pytest's cache (per run
    under ``-p no:cacheprovider``)."""
    cache = getattr(request.config, "cache", None)
    root = Path(cache.mkdir("comfyx-tiny-models")) if cache else tmp_path_factory.mktemp("comfyx-tiny-models")
    checkpoint = root / "checkpoints" / TINY_CHECKPOINT
    if not checkpoint.exists():
        subprocess.run([sys.executable, "-m", "comfyx.testing.checkpoint", "--comfyui", str(comfyui), str(checkpoint)],
                       check=True, capture_output=True)
    config = tmp_path_factory.mktemp("models") / "extra_model_paths.yaml"
    config.write_text(f"comfyx_tests:\n  base_path: {root}\n  checkpoints: checkpoints\n")
    return ModelDir(root=root, extra_model_paths=config)


@pytest.fixture
def comfyx_server(comfyui: Path, tmp_path: Path) -> Iterator[Callable[..., ComfyxServer]]:
    """Factory: ``comfyx_server(*comfyui_args, comfyx_args=[...])`` starts a server, stopped after the test.
    Its caches (compile caches, calibrated scales) are the test's own unless ``env`` or ``comfyx_args`` name
    them, never the user's."""
    started: list[ComfyxServer] = []

    def start(*comfyui_args: str, comfyx_args: list[str] = (), env: dict[str, str] | None = None) -> ComfyxServer:
        env = {"COMFYX_CACHE_DIR": str(tmp_path / "comfyx-cache"), **(env or {})}
        server = ComfyxServer(comfyui, ["--cpu", *comfyui_args], comfyx_args=list(comfyx_args),
                              log_path=tmp_path / f"server-{len(started)}.log", env=env)
        started.append(server)
        server.start()
        return server

    yield start
    for server in started:
        server.stop()


@pytest.fixture
def run_comfyx() -> Callable[..., subprocess.CompletedProcess]:
    """Run the ``comfyx`` command as a user would; returns the completed process (text output)."""

    def run(*args: str, timeout: float = 600, **kwargs: object) -> subprocess.CompletedProcess:
        command = [*comfyx_command(), *args]
        return subprocess.run(command, capture_output=True, text=True, timeout=timeout, check=False, **kwargs)

    return run
