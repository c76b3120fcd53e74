#!/usr/bin/env python3
"""Recompute every fixed-output hash in pkgs/sources.json and print the ones that differ.

Why this exists: our machines cannot run nixpkgs, so no `nix build` tells us a hash is wrong.
Instead each pin is recomputed from the thing it names:

* PyPI files: the exact file (from a directory of already downloaded files, or fetched from
  the URL `fetchPypi` builds, else from the URL PyPI's index gives for that file name), streamed
  into sha256 (nothing is kept on disk), in SRI form.
* Files pinned by URL (`url-wheel`: torch's XPU wheels, on download.pytorch.org): the same, from
  `--files` or `--download`; where neither has the file, reported as taken from the public pin
  the entry names.
* `pinnedBy` (a public pin of the same file: repository, commit, file): with a git directory of
  that repository (`--git OWNER/REPO=GIT_DIR`), our URL/file name and hash are compared with the
  ones written in that file at that commit, so a copied pin is rechecked against its source.
* GitHub trees: the NAR hash of the tree at the pinned commit, read from a local git mirror
  (`--git OWNER/REPO=GIT_DIR`), less the `exclude`d paths (the same paths the Nix source leaves
  out with a non-cone sparse checkout). Every blob is re-hashed against its git object id first,
  so a damaged mirror cannot produce a wrong pin. A blob the mirror lacks (snapshots leave out
  large files) can be supplied as a file recovered elsewhere (`--blob FILE`): it is used only
  where the tree names exactly its git blob id.
* flake.lock inputs: the NAR hash of an unpacked copy of the input (`--flake-input NAME=DIR`,
  e.g. the extracted GitHub tarball of the locked revision); without one they are reported as
  skipped, since their tarballs live on GitHub.

Exit status: 0 when nothing differs, 1 on a mismatch, 2 on usage errors. `--write` stores the
recomputed hashes instead of only reporting them.
"""

from __future__ import annotations

import argparse
import base64
import functools
import hashlib
import io
import json
import re
import subprocess
import sys
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

HERE = Path(__file__).resolve().parent
SOURCES = HERE / "sources.json"


def sri(digest: bytes) -> str:
    return "sha256-" + base64.b64encode(digest).decode()


# --- wheel files ----------------------------------------------------------------------------

def wheel_filename(e: dict) -> str:
    if e.get("type") == "url-wheel":  # the name fetch-wheel.nix stores it under: %2B is `+`
        return urllib.parse.unquote(e["url"].rsplit("/", 1)[1])
    return f"{e['pname']}-{e['version']}-{e['python']}-{e['abi']}-{e['platform']}.whl"


def wheel_url(e: dict) -> str:
    # The URL nixpkgs' fetchPypi builds for format = "wheel" (dist = python tag).
    return (
        f"https://files.pythonhosted.org/packages/{e['python']}/{e['pname'][0]}/"
        f"{e['pname']}/{wheel_filename(e)}"
    )


def hash_stream(stream) -> str:
    h = hashlib.sha256()
    for chunk in iter(lambda: stream.read(1 << 20), b""):
        h.update(chunk)
    return sri(h.digest())


def index_url(e: dict) -> str:
    """The file's URL in PyPI's JSON index (PEP 691), for mirrors without fetchPypi's redirects."""
    project = re.sub(r"[-_.]+", "-", e["pname"]).lower()
    req = urllib.request.Request(f"https://pypi.org/simple/{project}/",
                                 headers={"Accept": "application/vnd.pypi.simple.v1+json"})
    with urllib.request.urlopen(req, timeout=60) as r:
        files = json.load(r)["files"]
    name = wheel_filename(e)
    for f in files:
        if f["filename"] == name:
            return f["url"]
    raise LookupError(f"PyPI lists no file {name} for {project}")


def file_hash(e: dict, files: list[Path], download: bool) -> str | None:
    """sha256 of the entry's file from `files`, else downloaded (streamed, never stored)."""
    name = wheel_filename(e)
    for d in files:
        if (d / name).is_file():
            with open(d / name, "rb") as f:
                return hash_stream(f)
    if not download:
        return None
    url = e["url"] if e["type"] == "url-wheel" else wheel_url(e)
    try:
        with urllib.request.urlopen(url, timeout=600) as r:
            return hash_stream(r)
    except urllib.error.HTTPError as err:
        if err.code != 404 or e["type"] == "url-wheel":
            raise
    with urllib.request.urlopen(index_url(e), timeout=600) as r:
        return hash_stream(r)


# --- NAR hash of a git tree ---------------------------------------------------------------------

def blob_id(data: bytes) -> str:
    return hashlib.sha1(f"blob {len(data)}\0".encode() + data).hexdigest()


class Git:
    def __init__(self, git_dir: str, blobs: dict[str, bytes] | None = None):
        self.git_dir = git_dir
        self.blobs = blobs or {}  # blob id -> content, for blobs the mirror lacks
        self.proc = subprocess.Popen(
            ["git", "--git-dir", git_dir, "cat-file", "--batch"],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE,
        )

    def read(self, oid: str) -> tuple[str, bytes]:
        self.proc.stdin.write(oid.encode() + b"\n")
        self.proc.stdin.flush()
        header = self.proc.stdout.readline().split()
        if len(header) >= 2 and header[1] == b"missing" and oid in self.blobs:
            return "blob", self.blobs[oid]
        if len(header) < 3 or header[1] == b"missing":
            raise LookupError(f"object {oid} is missing from {self.git_dir} (no --blob file has that id)")
        kind, size = header[1].decode(), int(header[2])
        data = self.proc.stdout.read(size)
        self.proc.stdout.read(1)  # trailing newline
        # Re-hash the object so that a corrupt mirror cannot yield a wrong pin.
        if hashlib.sha1(f"{kind} {size}\0".encode() + data).hexdigest() != oid:
            raise ValueError(f"object {oid} does not match its id")
        return kind, data

    def file(self, rev: str, path: str) -> bytes:
        """The content of `path` in commit `rev`."""
        oid = self.commit_tree(rev)
        for part in path.split("/"):
            entries = {name.decode(): child for _, name, child in self.tree_entries(oid)}
            if part not in entries:
                raise LookupError(f"{path} is not in {rev}")
            oid = entries[part]
        kind, data = self.read(oid)
        if kind != "blob":
            raise ValueError(f"{path} in {rev} is a {kind}, not a file")
        return data

    def commit_tree(self, rev: str) -> str:
        kind, data = self.read(rev)
        if kind != "commit":
            raise ValueError(f"{rev} is a {kind}, not a commit")
        return data.split(b"\n", 1)[0].split()[1].decode()

    def tree_entries(self, oid: str):
        _, data = self.read(oid)
        i = 0
        while i < len(data):
            sp = data.index(b" ", i)
            nul = data.index(b"\0", sp)
            yield data[i:sp].decode(), data[sp + 1:nul], data[nul + 1:nul + 21].hex()
            i = nul + 21


def nar_str(b: bytes) -> bytes:
    return len(b).to_bytes(8, "little") + b + b"\0" * (-len(b) % 8)


def nar_tree(git: Git, tree: str, prefix: str, exclude: set[str], out) -> bool:
    """Write the NAR of `tree` to `out`; return False (writing nothing) if it ends up empty."""
    children = []
    for mode, name, oid in git.tree_entries(tree):
        path = prefix + name.decode()
        if path in exclude:
            continue
        children.append((name, mode, oid, path))
    if not children:
        return False
    body = []
    for name, mode, oid, path in sorted(children):  # NAR orders entries by name bytes
        node = []
        if mode == "40000":
            buf = io.BytesIO()
            if not nar_tree(git, oid, path + "/", exclude, buf):
                continue  # a sparse checkout creates no directory for excluded contents
            node.append(buf.getvalue())
        elif mode in ("100644", "100755"):
            _, data = git.read(oid)
            node.append(nar_str(b"(") + nar_str(b"type") + nar_str(b"regular"))
            if mode == "100755":
                node.append(nar_str(b"executable") + nar_str(b""))
            node.append(nar_str(b"contents") + nar_str(data) + nar_str(b")"))
        elif mode == "120000":
            _, target = git.read(oid)
            node.append(nar_str(b"(") + nar_str(b"type") + nar_str(b"symlink")
                        + nar_str(b"target") + nar_str(target) + nar_str(b")"))
        else:
            raise ValueError(f"{path}: mode {mode} (submodule?) is not supported")
        body.append(nar_str(b"entry") + nar_str(b"(") + nar_str(b"name") + nar_str(name)
                    + nar_str(b"node") + b"".join(node) + nar_str(b")"))
    if not body:
        return False
    out.write(nar_str(b"(") + nar_str(b"type") + nar_str(b"directory") + b"".join(body)
              + nar_str(b")"))
    return True


class HashWriter:
    def __init__(self):
        self.h = hashlib.sha256()

    def write(self, b: bytes):
        self.h.update(b)


def nar_dir(path: Path, out) -> None:
    """Write the NAR of a file-system path (what `nix hash path` hashes)."""
    if path.is_symlink():
        out.write(nar_str(b"(") + nar_str(b"type") + nar_str(b"symlink") + nar_str(b"target")
                  + nar_str(bytes(path.readlink())) + nar_str(b")"))
    elif path.is_dir():
        out.write(nar_str(b"(") + nar_str(b"type") + nar_str(b"directory"))
        for child in sorted(path.iterdir(), key=lambda p: p.name.encode()):
            out.write(nar_str(b"entry") + nar_str(b"(") + nar_str(b"name") + nar_str(child.name.encode())
                      + nar_str(b"node"))
            nar_dir(child, out)
            out.write(nar_str(b")"))
        out.write(nar_str(b")"))
    else:
        out.write(nar_str(b"(") + nar_str(b"type") + nar_str(b"regular"))
        if path.stat().st_mode & 0o100:
            out.write(nar_str(b"executable") + nar_str(b""))
        out.write(nar_str(b"contents") + nar_str(path.read_bytes()) + nar_str(b")"))


def path_hash(path: Path) -> str:
    w = HashWriter()
    w.write(nar_str(b"nix-archive-1"))
    nar_dir(path, w)
    return sri(w.h.digest())


def flake_lock_inputs(lock_file: Path) -> dict[str, dict]:
    lock = json.loads(lock_file.read_text())
    return {name: node["locked"] for name, node in lock["nodes"].items() if "locked" in node}


def github_tree_hash(git_dir: str, rev: str, exclude: list[str], blobs: dict[str, bytes] | None = None) -> str:
    git = Git(git_dir, blobs)
    w = HashWriter()
    w.write(nar_str(b"nix-archive-1"))
    nar_tree(git, git.commit_tree(rev), "", set(exclude), w)
    return sri(w.h.digest())


# --- public pins ---------------------------------------------------------------------------------

def pin_source(e: dict) -> str:
    p = e["pinnedBy"]
    return f"{p['repo']}@{p['commit'][:8]}:{p['file']}"


def public_pin(git: Git, e: dict) -> tuple[str, str]:
    """(url, hash) the entry's public pin gives for the same file name.

    The pin is Nix (`url = "..."; hash = "...";` pairs); it is read from the git object store at
    the pinned commit, each object checked against its id.
    """
    p = e["pinnedBy"]
    text = git.file(p["commit"], p["file"]).decode()
    name = wheel_filename(e)
    found = [(url, h) for url, h in re.findall(r'url\s*=\s*"([^"]+)";\s*hash\s*=\s*"([^"]+)";', text)
             if urllib.parse.unquote(url.rsplit("/", 1)[1]) == name]
    if len(found) != 1:
        raise LookupError(f"{pin_source(e)} pins {len(found)} files named {name}, not one")
    return found[0]


@functools.cache
def git_at(git_dir: str) -> Git:
    return Git(git_dir)


def entry_hash(e: dict, args: argparse.Namespace, gits: dict[str, str],
               blobs: dict[str, bytes]) -> tuple[str | None, str]:
    """(recomputed hash or None, why it is None) for one sources.json entry."""
    try:
        if e["type"] in ("pypi-wheel", "url-wheel"):
            why = "file not given (--files) and --download not set"
            if e["type"] == "url-wheel":
                why = f"taken from {pin_source(e)}; {why}"
            return file_hash(e, args.files, args.download), why
        if e["type"] == "github":
            git_dir = gits.get(f"{e['owner']}/{e['repo']}".lower())
            why = f"no --git {e['owner']}/{e['repo']}=GIT_DIR"
            return (github_tree_hash(git_dir, e["rev"], e.get("exclude", []), blobs) if git_dir else None), why
        return None, f"type {e['type']} cannot be recomputed here"
    except urllib.error.URLError as err:
        if e["type"] == "url-wheel":
            return None, f"taken from {pin_source(e)}, not reachable here ({err.reason})"
        return None, str(err)
    except (LookupError, ValueError, OSError) as err:
        return None, str(err)


def check_public_pin(name: str, e: dict, gits: dict[str, str]) -> bool | None:
    """Whether our URL (url-wheel) or file name and hash equal the public pin's; None: no --git for it."""
    git_dir = gits.get(e["pinnedBy"]["repo"].lower())
    if git_dir is None:
        print(f"skip      {name}: pinned by {pin_source(e)}, no --git {e['pinnedBy']['repo']}=GIT_DIR")
        return None
    try:
        url, h = public_pin(git_at(git_dir), e)
    except (LookupError, ValueError) as err:
        print(f"MISMATCH  {name}: {err}")
        return False
    if h != e["hash"] or (e["type"] == "url-wheel" and url != e["url"]):
        print(f"MISMATCH  {name}: {pin_source(e)} pins {url} {h}, we pin {e.get('url', '')} {e['hash']}")
        return False
    print(f"ok        {name} agrees with {pin_source(e)}")
    return True


# --- main ------------------------------------------------------------------------------------------

def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sources", type=Path, default=SOURCES)
    ap.add_argument("--files", type=Path, action="append", default=[],
                    help="directory of already downloaded PyPI files (checked before downloading)")
    ap.add_argument("--git", action="append", default=[], metavar="OWNER/REPO=GIT_DIR",
                    help="local git directory holding a pinned GitHub repository or a public pin's repository")
    ap.add_argument("--blob", type=Path, action="append", default=[], metavar="FILE",
                    help="a file standing in for a blob a --git mirror lacks (matched by its git blob id)")
    ap.add_argument("--download", action="store_true",
                    help="fetch files that --files lacks (streamed into the hash, not stored)")
    ap.add_argument("--flake-lock", type=Path, default=HERE.parent / "flake.lock")
    ap.add_argument("--flake-input", action="append", default=[], metavar="NAME=DIR",
                    help="unpacked copy of a flake.lock input at its locked revision")
    ap.add_argument("--only", action="append", default=[], help="recheck only these entries")
    ap.add_argument("--write", action="store_true", help="store recomputed hashes in the sources file")
    args = ap.parse_args(argv)

    sources = json.loads(args.sources.read_text())
    gits = {}
    for g in args.git:
        key, sep, path = g.partition("=")
        if not sep:
            ap.error(f"--git {g}: expected OWNER/REPO=GIT_DIR")
        gits[key.lower()] = path

    blobs = {}
    for f in args.blob:
        data = f.read_bytes()
        blobs[blob_id(data)] = data
        print(f"blob      {f}: {blob_id(data)}")
    mismatches = checked = 0
    copies = dict(arg.partition("=")[::2] for arg in args.flake_input)
    for name, locked in sorted(flake_lock_inputs(args.flake_lock).items()):
        if args.only and f"flake:{name}" not in args.only:
            continue
        if name not in copies:
            print(f"skip      flake:{name}: no --flake-input {name}=DIR (an unpacked copy of {locked.get('rev')})")
            continue
        checked += 1
        got = path_hash(Path(copies[name]))
        if got == locked["narHash"]:
            print(f"ok        flake:{name} {got}")
        else:
            mismatches += 1
            print(f"MISMATCH  flake:{name}: locked {locked['narHash']}, computed {got}")
    for name, e in sorted(sources.items()):
        if name.startswith("_") or (args.only and name not in args.only):
            continue
        got, why = entry_hash(e, args, gits, blobs)
        if got is None:
            print(f"skip      {name}: {why}")
        else:
            checked += 1
            if got == e["hash"]:
                print(f"ok        {name} {got}")
            else:
                mismatches += 1
                print(f"MISMATCH  {name}: pinned {e['hash']}, computed {got}")
                if args.write:
                    e["hash"] = got
        if "pinnedBy" in e:
            agrees = check_public_pin(name, e, gits)
            if agrees is not None:
                checked += 1
                mismatches += not agrees
    if args.write and mismatches:
        args.sources.write_text(json.dumps(sources, indent=2) + "\n")
    print(f"{checked} rechecked, {mismatches} mismatched")
    return 1 if mismatches else 0


if __name__ == "__main__":
    sys.exit(main())
