"""tools/real-nixpkgs-eval.py: its error summaries and input checks here, the evaluation itself
where a nixpkgs tree is given (NIXPKGS_PATH; CI has none, so it skips there)."""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
SCRIPT = REPO / "tools" / "real-nixpkgs-eval.py"


def load_script():
    sys.path.insert(0, str(SCRIPT.parent))  # the script imports nix_chroot from its directory
    try:
        spec = importlib.util.spec_from_file_location("real_nixpkgs_eval", SCRIPT)
        module = importlib.util.module_from_spec(spec)
        sys.modules[spec.name] = module  # dataclasses looks its module up there
        spec.loader.exec_module(module)
        return module
    finally:
        sys.path.remove(str(SCRIPT.parent))


def run_script(*args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, str(SCRIPT), *args], capture_output=True, text=True, timeout=timeout,
                          check=False)


TRACE = """\
error:
       … while evaluating derivation 'comfyui-tpu-0.3.64'
         whose name attribute is located at /nix/store/icqbhmnxfwcbbwn6ml1kd3y2yg2y1mhg-source/pkgs/stdenv/x.nix:1:1

       … while evaluating derivation 'python3-3.13.13-env'

       … while evaluating derivation 'comfyui-tpu-0.3.64'

       error: undefined variable 'spandrel'
       at /nix/store/l3jz4z7llq1wflmkl74q8wm7d8b6zia5-source/pkgs/comfyui/package.nix:52:7:
           51|       kornia
"""


def test_summary_is_the_innermost_error_its_position_and_the_derivations_on_the_way():
    assert load_script().summarize(TRACE).splitlines() == [
        "error: undefined variable 'spandrel'",
        "at /nix/store/…-source/pkgs/comfyui/package.nix:52:7:",
        "via comfyui-tpu-0.3.64 > python3-3.13.13-env",
    ]


def test_bad_trees_are_refused_before_anything_runs(tmp_path):
    proc = run_script("--nixpkgs", str(tmp_path / "missing"))
    assert proc.returncode == 2 and "no such directory" in proc.stderr
    proc = run_script("--nixpkgs", str(tmp_path))
    assert proc.returncode == 2 and "not a nixpkgs tree" in proc.stderr
    (tmp_path / "lib").mkdir()
    (tmp_path / "lib/.version").write_text("26.11\n")
    (tmp_path / "nixos").mkdir()
    proc = run_script("--nixpkgs", str(tmp_path), "--home-manager", str(tmp_path))
    assert proc.returncode == 2 and "not a Home Manager tree" in proc.stderr
    proc = run_script("--nixpkgs", str(tmp_path), "--tree-hole", "(")
    assert proc.returncode == 2 and "--tree-hole '('" in proc.stderr
    proc = run_script("--nixpkgs", str(tmp_path), "--jobs", "0")
    assert proc.returncode == 2 and "--jobs 0" in proc.stderr


@pytest.mark.slow
@pytest.mark.timeout(3600)
def test_every_output_evaluates_against_real_nixpkgs():
    tree = os.environ.get("NIXPKGS_PATH")
    if not tree:
        pytest.skip("NIXPKGS_PATH is not set: no nixpkgs tree to evaluate the flake against (CI has none; "
                    "see tools/real-nixpkgs-eval.py)")
    if os.geteuid() != 0:
        pytest.skip("tools/real-nixpkgs-eval.py needs root (mmdebstrap, mount, chroot)")
    args = ["--nixpkgs", tree]
    for env, flag in (("HOME_MANAGER_PATH", "--home-manager"), ("NIXPKGS_TREE_HOLE", "--tree-hole"),
                      ("COMFYX_NIX_CHROOT", "--root")):
        if os.environ.get(env):
            args += [flag, os.environ[env]]
    proc = run_script(*args, timeout=3500)
    assert proc.returncode == 0, proc.stdout + proc.stderr  # exit 1: a failure that is the project's
