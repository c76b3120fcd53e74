"""The pip constraints `comfyx comfyui install` passes match what this venv really runs."""

import importlib.metadata

import pytest
from comfyx import backends


def pins(path) -> dict[str, str]:
    lines = (line.split("#")[0].strip() for line in path.read_text().splitlines())
    return dict(line.split("==") for line in lines if line)


@pytest.mark.parametrize("name", ["constraints-xla.txt", "constraints-ipex.txt"])
def test_constraint_files_pin_torch_and_its_companions(name):
    pinned = pins(backends.BACKENDS_DIR / name)
    assert {"torch", "torchvision", "torchaudio"} <= pinned.keys()


def test_installed_backend_packages_match_their_constraints():
    files = backends.pip_constraints()
    if not files:
        pytest.skip("neither torch_xla nor IPEX is installed here")
    for path in files:
        for dist, version in pins(path).items():
            assert importlib.metadata.version(dist).split("+")[0] == version, (path.name, dist)
