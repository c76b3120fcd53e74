"""Fixtures and helpers that run Nix: parse files, evaluate the module harnesses, skip with the reason.

nixpkgs itself cannot be evaluated on our machines (Debian's Nix is 2.8, nixpkgs wants 2.18, and
GitHub is out of reach); nixpkgs' lib alone can, which is all lib.evalModules needs.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
HERE = Path(__file__).resolve().parent

NO_NIX = "nix-instantiate is not installed (Debian: apt-get install nix-bin)"
NO_LIB = (
    "NIXPKGS_LIB is not set: point it at nixpkgs' lib (a checkout of nixpkgs, or of "
    "github:nix-community/nixpkgs.lib) to evaluate the modules"
)


def nix_instantiate() -> str:
    exe = shutil.which("nix-instantiate")
    if exe is None:
        pytest.skip(NO_NIX)
    return exe


def nixpkgs_lib() -> Path:
    """The directory holding nixpkgs' lib/default.nix, from NIXPKGS_LIB (the lib or its parent)."""
    value = os.environ.get("NIXPKGS_LIB")
    if not value:
        pytest.skip(NO_LIB)
    for candidate in (Path(value) / "lib", Path(value)):
        if (candidate / "default.nix").is_file() and (candidate / "modules.nix").is_file():
            return candidate.resolve()
    pytest.fail(f"NIXPKGS_LIB={value} holds no nixpkgs lib (no lib/default.nix with modules.nix)")


def run(args: list[str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(args, check=False, capture_output=True, text=True, timeout=120, cwd=REPO)


def evaluate(harness: str, module: str | None = None, **args: str) -> dict:
    """Evaluate tests/nix/<harness> with `module` (a Nix expression) as the user's configuration
    and `args` as further Nix-expression arguments."""
    proc = _eval(harness, module, **args)
    if proc.returncode != 0:
        raise AssertionError(f"evaluation failed:\n{proc.stderr}")
    return json.loads(proc.stdout)


def evaluation_error(harness: str, module: str | None = None, **args: str) -> str:
    """The error evaluating `module` (and `args`, as in `evaluate`) gives; fails the test if it evaluates."""
    proc = _eval(harness, module, **args)
    if proc.returncode == 0:
        raise AssertionError(f"expected an evaluation error, got {proc.stdout[:500]}")
    return proc.stderr


def _eval(harness: str, module: str | None, **args: str) -> subprocess.CompletedProcess[str]:
    exe = nix_instantiate()
    lib = nixpkgs_lib()
    if module is not None:
        args["userModule"] = module
    argv = [exe, "--eval", "--strict", "--json", str(HERE / harness), "--arg", "lib", f"import {lib}"]
    for name, value in args.items():
        argv += ["--arg", name, value]
    return run(argv)


@pytest.fixture
def nix_files() -> list[Path]:
    """Every .nix file of the repository (tracked or not, less ignored ones)."""
    try:
        out = subprocess.run(
            ["git", "ls-files", "-co", "--exclude-standard", "*.nix"],
            capture_output=True, text=True, check=True, cwd=REPO,
        ).stdout
        files = [REPO / line for line in out.splitlines() if line]
    except (OSError, subprocess.CalledProcessError):  # no git (e.g. a sandboxed copy)
        files = [p for p in REPO.rglob("*.nix") if ".git" not in p.parts]
    return sorted(p for p in files if p.is_file())


@pytest.fixture
def nixos():
    """Evaluate services.comfyui with a configuration (Nix expression) -> the harness's JSON."""
    return lambda module: evaluate("eval-nixos.nix", module)


@pytest.fixture
def nixos_error():
    return lambda module: evaluation_error("eval-nixos.nix", module)


@pytest.fixture
def home():
    """Evaluate programs.comfyui with a configuration (Nix expression) -> the harness's JSON."""
    return lambda module: evaluate("eval-home-manager.nix", module)


@pytest.fixture
def home_error():
    return lambda module: evaluation_error("eval-home-manager.nix", module)


@pytest.fixture
def flake():
    """The flake's outputs and the ComfyUI source's fetch (eval-flake.nix); `package` replaces
    pkgs/comfyui-src/package.nix by another copy of it."""

    def evaluate_flake(package: Path | None = None) -> dict:
        return evaluate("eval-flake.nix", **({"comfyuiSrcPackage": str(package)} if package else {}))

    return evaluate_flake


@pytest.fixture
def comfyui_package():
    """pkgs/comfyui for a variant with stand-in Python packages (eval-packages.nix)."""
    def evaluate_package(variant: str, bmf: bool | None = None) -> dict:
        """``bmf``: the package's withBmf (None: its default)."""
        return evaluate("eval-packages.nix", variant=f'"{variant}"',
                        **({} if bmf is None else {"withBmf": "true" if bmf else "false"}))

    return evaluate_package


@pytest.fixture
def nix_eval():
    """evaluate(harness, **args) for harnesses without a fixture of their own."""
    return evaluate


@pytest.fixture
def nix_eval_error():
    """evaluation_error(harness, **args) for harnesses without a fixture of their own."""
    return lambda harness, **args: evaluation_error(harness, **args)
