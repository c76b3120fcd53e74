"""pkgs/update-hashes.py: its NAR hash of a git tree equals Nix's, and it reports mismatches."""

from __future__ import annotations

import base64
import hashlib
import importlib.util
import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
SCRIPT = REPO / "pkgs" / "update-hashes.py"

spec = importlib.util.spec_from_file_location("update_hashes", SCRIPT)
update_hashes = importlib.util.module_from_spec(spec)
spec.loader.exec_module(update_hashes)


def git(cwd: Path, *args: str) -> str:
    env = {**os.environ, "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@t", "GIT_COMMITTER_NAME": "t",
           "GIT_COMMITTER_EMAIL": "t@t"}
    return subprocess.run(["git", *args], cwd=cwd, env=env, check=True, capture_output=True, text=True).stdout


@pytest.fixture
def repo(tmp_path: Path) -> tuple[Path, str]:
    """A small repository with an executable, a symlink, nested and soon-excluded paths."""
    if shutil.which("git") is None:
        pytest.skip("git is not installed")
    work = tmp_path / "work"
    (work / "a" / "b").mkdir(parents=True)
    (work / "drop" / "deep").mkdir(parents=True)
    (work / "README").write_text("hello\n")
    (work / "run.sh").write_text("#!/bin/sh\necho hi\n")
    (work / "run.sh").chmod(0o755)
    (work / "a" / "b" / "data.bin").write_bytes(bytes(range(256)) * 3)
    (work / "a" / "big.json").write_text("{}\n")
    (work / "drop" / "deep" / "x").write_text("x\n")
    (work / "link").symlink_to("a/b/data.bin")
    (work / "Z-upper").write_text("sorts before lowercase in NAR\n")
    git(work, "init", "-q")
    git(work, "add", "-A")
    git(work, "commit", "-qm", "init")
    return work, git(work, "rev-parse", "HEAD").strip()


def nix_hash_path(path: Path) -> str:
    exe = shutil.which("nix")
    if exe is None:
        pytest.skip("nix is not installed (Debian: apt-get install nix-bin)")
    return subprocess.run(
        [exe, "--extra-experimental-features", "nix-command", "hash", "path", str(path)],
        check=True, capture_output=True, text=True,
    ).stdout.strip()


def checkout(work: Path, rev: str, dest: Path, exclude: list[str]) -> Path:
    """What a non-cone sparse checkout without `exclude` leaves (less .git)."""
    shutil.copytree(work, dest, symlinks=True, ignore=shutil.ignore_patterns(".git"))
    for p in exclude:
        target = dest / p
        shutil.rmtree(target) if target.is_dir() else target.unlink()
    return dest


def test_nar_hash_matches_nix(repo, tmp_path):
    work, rev = repo
    ours = update_hashes.github_tree_hash(str(work / ".git"), rev, [])
    assert ours == nix_hash_path(checkout(work, rev, tmp_path / "full", []))


def test_excluded_paths_leave_no_trace(repo, tmp_path):
    work, rev = repo
    exclude = ["drop", "a/big.json"]
    ours = update_hashes.github_tree_hash(str(work / ".git"), rev, exclude)
    assert ours == nix_hash_path(checkout(work, rev, tmp_path / "sparse", exclude))
    assert ours != update_hashes.github_tree_hash(str(work / ".git"), rev, [])


def test_reports_mismatch_and_writes_fix(repo, tmp_path, capsys):
    work, rev = repo
    wheel_dir = tmp_path / "wheels"
    wheel_dir.mkdir()
    wheel = wheel_dir / "demo-1.0-py3-none-any.whl"
    wheel.write_bytes(b"not really a wheel")
    wheel_hash = "sha256-" + base64.b64encode(hashlib.sha256(b"not really a wheel").digest()).decode()
    right = update_hashes.github_tree_hash(str(work / ".git"), rev, [])
    sources = tmp_path / "sources.json"
    sources.write_text(json.dumps({
        "_comment": "test",
        "tree": {"type": "github", "owner": "o", "repo": "r", "rev": rev, "hash": "sha256-" + "B" * 43 + "="},
        "demo": {"type": "pypi-wheel", "pname": "demo", "version": "1.0", "python": "py3", "abi": "none",
                 "platform": "any", "hash": wheel_hash},
        "absent": {"type": "pypi-wheel", "pname": "absent", "version": "1", "python": "py3", "abi": "none",
                   "platform": "any", "hash": wheel_hash},
    }))
    args = ["--sources", str(sources), "--git", f"o/r={work / '.git'}", "--files", str(wheel_dir)]
    assert update_hashes.main(args) == 1
    out = capsys.readouterr().out
    assert "MISMATCH  tree" in out and "ok        demo" in out and "skip      absent" in out
    assert update_hashes.main([*args, "--write"]) == 1
    assert json.loads(sources.read_text())["tree"]["hash"] == right
    assert update_hashes.main(args) == 0


def test_fetchpypi_url():
    entry = {"pname": "torch_xla", "version": "2.9.0", "python": "cp313", "abi": "cp313",
             "platform": "manylinux_2_28_x86_64"}
    assert update_hashes.wheel_url(entry) == (
        "https://files.pythonhosted.org/packages/cp313/t/torch_xla/"
        "torch_xla-2.9.0-cp313-cp313-manylinux_2_28_x86_64.whl")


def test_pinned_comfyui_hash_recomputes():
    git_dir = os.environ.get("COMFYX_COMFYUI_GIT")
    if not git_dir:
        pytest.skip("COMFYX_COMFYUI_GIT is not set: name a git directory holding ComfyUI's pinned commit")
    s = json.loads((REPO / "pkgs" / "sources.json").read_text())["comfyui"]
    assert "exclude" not in s, "ComfyUI is pinned as its whole tree"
    assert update_hashes.github_tree_hash(git_dir, s["rev"], []) == s["hash"]


def test_a_blob_the_mirror_lacks_is_taken_from_a_file_with_its_id(repo, tmp_path, capsys):
    work, rev = repo
    whole = update_hashes.github_tree_hash(str(work / ".git"), rev, [])
    data = (work / "a" / "big.json").read_bytes()
    oid = update_hashes.blob_id(data)
    assert oid == git(work, "hash-object", "a/big.json").strip()
    (work / ".git" / "objects" / oid[:2] / oid[2:]).unlink()  # a snapshot without that blob
    with pytest.raises(LookupError, match=oid):
        update_hashes.github_tree_hash(str(work / ".git"), rev, [])
    wrong = update_hashes.blob_id(b"{ }\n")
    with pytest.raises(LookupError, match=oid):
        update_hashes.github_tree_hash(str(work / ".git"), rev, [], {wrong: b"{ }\n"})
    assert update_hashes.github_tree_hash(str(work / ".git"), rev, [], {oid: data}) == whole
    # The same through the command line.
    recovered = tmp_path / "recovered.json"
    recovered.write_bytes(data)
    sources = tmp_path / "sources.json"
    sources.write_text(json.dumps({"tree": {"type": "github", "owner": "o", "repo": "r", "rev": rev, "hash": whole}}))
    args = ["--sources", str(sources), "--git", f"o/r={work / '.git'}"]
    assert update_hashes.main(args) == 0 and "skip      tree" in capsys.readouterr().out
    assert update_hashes.main([*args, "--blob", str(recovered)]) == 0
    assert "ok        tree" in capsys.readouterr().out


def test_directory_nar_hash_matches_nix(repo, tmp_path):
    work, rev = repo
    tree = checkout(work, rev, tmp_path / "tree", [])
    assert update_hashes.path_hash(tree) == nix_hash_path(tree)


def test_flake_inputs_are_rechecked_from_an_unpacked_copy(repo, tmp_path, capsys):
    work, rev = repo
    tree = checkout(work, rev, tmp_path / "tree", [])
    lock = tmp_path / "flake.lock"
    locked = {"type": "github", "owner": "o", "repo": "r", "rev": rev, "narHash": update_hashes.path_hash(tree)}
    lock.write_text(json.dumps({"nodes": {"root": {"inputs": {"dep": "dep"}}, "dep": {"locked": locked}},
                                "root": "root", "version": 7}))
    sources = tmp_path / "sources.json"
    sources.write_text("{}")
    base = ["--sources", str(sources), "--flake-lock", str(lock)]
    assert update_hashes.main(base) == 0
    assert "skip      flake:dep" in capsys.readouterr().out
    assert update_hashes.main([*base, "--flake-input", f"dep={tree}"]) == 0
    (tree / "README").write_text("changed\n")
    assert update_hashes.main([*base, "--flake-input", f"dep={tree}"]) == 1
    assert "MISMATCH  flake:dep" in capsys.readouterr().out


def sri_of(data: bytes) -> str:
    return "sha256-" + base64.b64encode(hashlib.sha256(data).digest()).decode()


PIN_FILE = """{
  xpu = {
    torch = {
      version = "1.0";
      url = "https://download.invalid/whl/xpu/demo-1.0%2Bxpu-py3-none-any.whl";
      hash = "HASH";
    };
  };
  runtime.lib = { url = "https://files.pythonhosted.org/packages/ab/cd/rt-2.0-py3-none-any.whl"; hash = "RT"; };
}
"""


@pytest.fixture
def pinned(tmp_path: Path) -> tuple[Path, Path, dict]:
    """A public pin (a git repository with a Nix file of URLs and hashes) and sources naming it."""
    if shutil.which("git") is None:
        pytest.skip("git is not installed")
    wheel, rt = b"an xpu wheel", b"a runtime wheel"
    pins = tmp_path / "pins"
    (pins / "nix").mkdir(parents=True)
    (pins / "nix" / "versions.nix").write_text(PIN_FILE.replace("HASH", sri_of(wheel)).replace("RT", sri_of(rt)))
    git(pins, "init", "-q")
    git(pins, "add", "-A")
    git(pins, "commit", "-qm", "pins")
    pin = {"repo": "o/pins", "commit": git(pins, "rev-parse", "HEAD").strip(), "file": "nix/versions.nix"}
    files = tmp_path / "files"
    files.mkdir()
    (files / "demo-1.0+xpu-py3-none-any.whl").write_bytes(wheel)
    sources = {
        "demo": {"type": "url-wheel", "pname": "demo", "version": "1.0+xpu", "hash": sri_of(wheel),
                 "url": "https://download.invalid/whl/xpu/demo-1.0%2Bxpu-py3-none-any.whl", "pinnedBy": pin},
        "rt": {"type": "pypi-wheel", "pname": "rt", "version": "2.0", "python": "py3", "abi": "none",
               "platform": "any", "hash": sri_of(rt), "pinnedBy": pin},
    }
    return pins, files, sources


def run_sources(tmp_path: Path, sources: dict, *args: str) -> int:
    path = tmp_path / "sources.json"
    path.write_text(json.dumps(sources))
    return update_hashes.main(["--sources", str(path), "--flake-lock", str(write_empty_lock(tmp_path)), *args])


def write_empty_lock(tmp_path: Path) -> Path:
    lock = tmp_path / "flake.lock"
    lock.write_text(json.dumps({"nodes": {"root": {}}, "root": "root", "version": 7}))
    return lock


def test_url_wheel_file_name_decodes_the_local_version():
    entry = {"type": "url-wheel", "url": "https://download.pytorch.org/whl/xpu/torch-2.10.0%2Bxpu-cp312-cp312-linux_x86_64.whl"}
    assert update_hashes.wheel_filename(entry) == "torch-2.10.0+xpu-cp312-cp312-linux_x86_64.whl"


def test_url_wheel_out_of_reach_is_reported_as_taken_from_its_pin(pinned, tmp_path, capsys):
    _, files, sources = pinned
    assert run_sources(tmp_path, {"demo": sources["demo"]}, "--download") == 0
    out = capsys.readouterr().out
    assert "skip      demo: taken from o/pins@" in out and "not reachable here" in out
    assert "0 rechecked" in out
    # The same file, downloaded elsewhere, is rechecked like a PyPI one.
    assert run_sources(tmp_path, {"demo": sources["demo"]}, "--files", str(files)) == 0
    assert "ok        demo sha256-" in capsys.readouterr().out


def test_pins_are_compared_with_the_public_pin(pinned, tmp_path, capsys):
    pins, _, sources = pinned
    with_git = ["--git", f"o/pins={pins / '.git'}"]
    assert run_sources(tmp_path, sources, *with_git) == 0
    out = capsys.readouterr().out
    assert "ok        demo agrees with o/pins@" in out and "ok        rt agrees with o/pins@" in out
    assert "2 rechecked, 0 mismatched" in out
    # Without the pin's repository there is nothing to compare with.
    assert run_sources(tmp_path, sources) == 0
    assert "skip      demo: pinned by o/pins@" in capsys.readouterr().out
    # A hash, or a URL, that is not the public pin's is a mismatch; so is a file the pin lacks.
    wrong_hash = {**sources["rt"], "hash": sri_of(b"something else")}
    wrong_url = {**sources["demo"], "url": sources["demo"]["url"].replace("/xpu/", "/cpu/")}
    absent = {**sources["rt"], "version": "3.0"}
    for entry in (wrong_hash, wrong_url, absent):
        assert run_sources(tmp_path, {"e": entry}, *with_git) == 1
        assert "MISMATCH  e:" in capsys.readouterr().out
    assert run_sources(tmp_path, {"e": absent}, *with_git) == 1
    assert "pins 0 files named rt-3.0-py3-none-any.whl" in capsys.readouterr().out


def test_our_pins_agree_with_the_public_pins():
    git_dir = os.environ.get("COMFYX_PIN_GIT")
    if not git_dir:
        pytest.skip("COMFYX_PIN_GIT is not set: name a git directory of utensils/comfyui-nix (the public pin)")
    sources = json.loads((REPO / "pkgs" / "sources.json").read_text())
    pinned = {k: v for k, v in sources.items() if not k.startswith("_") and "pinnedBy" in v}
    assert len(pinned) == 25
    for name, entry in pinned.items():
        assert entry["pinnedBy"]["repo"] == "utensils/comfyui-nix", name
        url, h = update_hashes.public_pin(update_hashes.Git(git_dir), entry)
        assert h == entry["hash"], name
        if entry["type"] == "url-wheel":
            assert url == entry["url"], name
