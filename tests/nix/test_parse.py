"""Every Nix file parses, and every fixed-output pin is a real-looking SRI hash."""

from __future__ import annotations

import base64
import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
PLACEHOLDER = re.compile(r"sha256-A{20,}|sha256-0{20,}|lib\.fakeHash|fakeSha256|fakeHash")


def test_every_nix_file_parses(nix_files):
    exe = shutil.which("nix-instantiate")
    if exe is None:
        pytest.skip("nix-instantiate is not installed (Debian: apt-get install nix-bin)")
    assert len(nix_files) > 10, nix_files  # the listing itself works
    failures = {}
    for path in nix_files:
        proc = subprocess.run([exe, "--parse", str(path)], check=False, capture_output=True, text=True, timeout=60)
        if proc.returncode != 0:
            failures[str(path.relative_to(REPO))] = proc.stderr.strip()
    assert failures == {}


def test_no_placeholder_hashes(nix_files):
    hits = [
        f"{p.relative_to(REPO)}:{n}: {line.strip()}"
        for p in nix_files
        if "tests" not in p.relative_to(REPO).parts[:1]
        for n, line in enumerate(p.read_text().splitlines(), 1)
        if PLACEHOLDER.search(line) and not line.lstrip().startswith("#")
    ]
    assert hits == []


def test_sources_pins_are_sha256_sri():
    sources = json.loads((REPO / "pkgs" / "sources.json").read_text())
    pins = {k: v for k, v in sources.items() if not k.startswith("_")}
    assert {"comfyui", "bmf", "stduuid", "comfyui-frontend-package", "torch-xla", "libtpu", "torch-2.10.0-xpu",
            "intel-sycl-rt"} <= set(pins)
    for name, entry in pins.items():
        h = entry["hash"]
        assert h.startswith("sha256-"), name
        assert len(base64.b64decode(h[7:], validate=True)) == 32, name
        assert not PLACEHOLDER.search(h), name
    assert pins["comfyui"]["rev"] == "a125cd84b054a57729b5eecab930ca9408719832"


def test_flake_lock_pins_nixpkgs_with_a_nar_hash():
    lock = json.loads((REPO / "flake.lock").read_text())
    nixpkgs = lock["nodes"][lock["nodes"]["root"]["inputs"]["nixpkgs"]]
    locked = nixpkgs["locked"]
    assert locked["type"] == "github" and locked["owner"] == "NixOS" and locked["repo"] == "nixpkgs"
    assert re.fullmatch(r"[0-9a-f]{40}", locked["rev"])
    assert len(base64.b64decode(locked["narHash"][7:])) == 32
    # flake.nix asks for the branch the lock was taken from
    assert f'github:NixOS/nixpkgs/{nixpkgs["original"]["ref"]}' in (REPO / "flake.nix").read_text()


def test_url_wheels_name_their_public_pin():
    """A hash we cannot compute here (download.pytorch.org is out of reach) is taken from a public
    pin of the same file, which the entry names: repository, full commit, file."""
    sources = json.loads((REPO / "pkgs" / "sources.json").read_text())
    url_wheels = {k: v for k, v in sources.items() if not k.startswith("_") and v["type"] == "url-wheel"}
    assert set(url_wheels) == {"torch-2.10.0-xpu", "torchvision-0.25.0-xpu", "torchaudio-2.10.0-xpu",
                               "triton-xpu-3.6.0"}
    for name, entry in sources.items():
        if name.startswith("_") or (entry["type"] != "url-wheel" and "pinnedBy" not in entry):
            continue
        pin = entry["pinnedBy"]
        assert set(pin) == {"repo", "commit", "file"}, name
        assert re.fullmatch(r"[\w.-]+/[\w.-]+", pin["repo"]) and re.fullmatch(r"[0-9a-f]{40}", pin["commit"]), name
        assert pin["file"] and not pin["file"].startswith("/"), name
    for name, entry in url_wheels.items():
        assert entry["url"].startswith("https://download.pytorch.org/whl/"), name
        assert entry["url"].endswith(".whl") and "cp312" in entry["url"], name
