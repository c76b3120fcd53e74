#!/usr/bin/env python3
"""Evaluate every flake output and the NixOS / Home Manager configurations against a real nixpkgs.

The repository's tests evaluate the flake with nixpkgs' lib and stand-in packages only; this is the
check that the packages evaluate against nixpkgs itself, as a user's `nix run` or `nixos-rebuild`
does. It prints `ok` or `FAIL` (with the error) for each of:

  packages, apps, checks, devShells, formatter (x86_64-linux)   `nix eval` of each, drvPath/program
  nixos.{cpu,cuda,ipex,tpu,ipex-cpu}.{toplevel,unit}            services.comfyui: the system, comfyui.service
  homeManager                                                   activationPackage with programs.comfyui
  nix flake check --no-build

and exits 1 when a failure is the project's, 0 when every failure is the tree's (below).

Nix runs in a Debian trixie chroot (Nix 2.26, made with mmdebstrap on first use; see nix_chroot.py)
with no substituters, `--offline` and import-from-derivation off, so nothing is fetched or built:
the host's Nix, if any, is not used. Needs root (mmdebstrap, mount, chroot).

The nixpkgs tree is given by path. Give it as a git repository (one commit is enough: `git init &&
git add -A && git commit`); a plain directory works but is re-hashed for every evaluation. The
result is only as good as the tree: say which one it was (the header prints its commit). Where no
full nixpkgs can be had, a near tree works: github:neg-serg/nixpkgs-slim's root commit holds
nixpkgs master of 2026-07-14 with most of nixos/modules/module-list.nix commented out (uncomment the
entries and restore upstream's closing `documentation.nixos.extraModules` entry) and three files
of 4 MiB or more missing (pkgs/development/haskell-modules/hackage-packages.nix,
pkgs/development/r-modules/cran-packages.json, pkgs/desktops/gnome/extensions/extensions.json).
Replace each by a file whose evaluation fails with a recognisable message and pass a pattern of it
as --tree-hole: a failure that reaches one is marked `FAIL [tree]`, the tree's gap, not the project's.
Each failure also names the chain of derivations that led to it (`via ...`).

--python-names FILE writes the tree's python3Packages names for tests/nix/test_python_names.py.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import textwrap
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import nix_chroot  # tools/, the script's directory, is first on sys.path

REPO = Path(__file__).resolve().parents[1]
SYSTEM = "x86_64-linux"
FLAKE = "path:/src/comfyx"
CONFIGS = "/src/comfyx/tools/real-nixpkgs-eval.nix"
NIXOS = ["cpu", "cuda", "ipex", "tpu", "ipex-cpu"]
TIMEOUT = 1800


@dataclass
class Result:
    name: str
    status: str  # ok, FAIL, tree (a FAIL that reached a --tree-hole), skip
    detail: str


def git(tree: Path, *args: str) -> str | None:
    # safe.directory: the tree may belong to another user than the one running this (root).
    proc = subprocess.run(["git", "-c", "safe.directory=*", "-C", str(tree), *args], capture_output=True,
                          text=True, check=False)
    return proc.stdout.strip() if proc.returncode == 0 else None


def describe(tree: Path) -> str:
    """Which tree it is: its git commit and subject, and nixpkgs' lib version where it has one."""
    head = git(tree, "log", "-1", "--format=%H %s") if (tree / ".git").exists() else None
    version = tree / "lib/.version"
    parts = [str(tree), f"git {head}" if head else "not a git repository"]
    if version.is_file():
        parts.append(f"lib {version.read_text().strip()}")
    return ", ".join(parts)


def snapshot(dest: Path) -> None:
    """The repository's files as the working tree has them (tracked, and untracked unless ignored)."""
    files = subprocess.run(["git", "-C", str(REPO), "ls-files", "-z", "-co", "--exclude-standard"],
                           capture_output=True, check=True).stdout.decode().split("\0")
    for rel in filter(None, files):
        src = REPO / rel
        if src.is_file():
            (dest / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dest / rel)


def summarize(stderr: str) -> str:
    """The innermost `error:` of a Nix trace (--show-trace) with the position after it, and the chain
    of derivations that led there, store hashes dropped."""
    lines = [line.strip() for line in stderr.splitlines()]
    idx = [i for i, line in enumerate(lines) if line.startswith("error:")]
    if not idx:
        return "\n".join(lines[-5:])
    i = idx[-1]
    out = [lines[i]]
    if i + 1 < len(lines) and lines[i + 1].startswith("at "):
        out.append(lines[i + 1])
    chain: list[str] = []
    for line in lines:
        m = re.match(r"… while evaluating derivation '([^']+)'", line)
        if m and m.group(1) not in chain:
            chain.append(m.group(1))
    if chain:
        out.append("via " + " > ".join(chain))
    return re.sub(r"/nix/store/[a-z0-9]{32}-", "/nix/store/…-", "\n".join(out))


class Evaluator:
    def __init__(self, root: Path, nixpkgs_ref: str, tree_hole: re.Pattern[str] | None):
        self.root = root
        self.flake_args = ["--offline", "--no-write-lock-file", "--override-input", "nixpkgs", nixpkgs_ref]
        self.tree_hole = tree_hole

    def nix(self, args: list[str]) -> subprocess.CompletedProcess[str]:
        try:
            return nix_chroot.run(self.root, ["nix", "--show-trace", *args], TIMEOUT)
        except subprocess.TimeoutExpired:
            return subprocess.CompletedProcess(args, 124, "", f"error: nix {args[0]} ran past {TIMEOUT} s")

    def attr_names(self, output: str) -> tuple[list[str], Result | None]:
        """The output's attribute names, or a failed Result when listing them fails."""
        attr = f"{output}.{SYSTEM}"
        proc = self.nix(["eval", "--json", *self.flake_args, f"{FLAKE}#{attr}", "--apply", "builtins.attrNames"])
        if proc.returncode != 0:
            return [], self.result(attr, proc)
        return json.loads(proc.stdout), None

    def result(self, name: str, proc: subprocess.CompletedProcess[str]) -> Result:
        if proc.returncode == 0:
            return Result(name, "ok", proc.stdout.strip().splitlines()[-1] if proc.stdout.strip() else "")
        if self.tree_hole and self.tree_hole.search(proc.stderr):
            return Result(name, "tree", summarize(proc.stderr))
        return Result(name, "FAIL", summarize(proc.stderr))

    def flake_attr(self, attr: str, select: str) -> Result:
        return self.result(attr, self.nix(["eval", "--raw", *self.flake_args, f"{FLAKE}#{attr}.{select}"]))

    def config(self, attr: str, has_home_manager: bool) -> Result:
        args = ["eval", "--raw", "--impure", "--file", CONFIGS, "--arg", "nixpkgs", "/src/nixpkgs"]
        if has_home_manager:
            args += ["--arg", "homeManager", "/src/home-manager"]
        return self.result(attr, self.nix([*args, f"{attr}.drvPath"]))

    def flake_check(self) -> Result:
        return self.result("nix flake check --no-build", self.nix(["flake", "check", "--no-build", *self.flake_args,
                                                                   FLAKE]))

    def python_names(self) -> list[str]:
        expr = ("builtins.attrNames (import /src/nixpkgs { system = \"" + SYSTEM + "\"; overlays = [ ]; "
                "config.allowAliases = false; }).python313Packages")
        proc = self.nix(["eval", "--json", "--impure", "--expr", expr])
        if proc.returncode != 0:
            raise RuntimeError(f"reading python313Packages: {summarize(proc.stderr)}")
        return sorted(json.loads(proc.stdout))


def targets(ev: Evaluator, has_home_manager: bool) -> list[Callable[[], Result]]:
    """Every evaluation, in report order."""
    jobs: list[Callable[[], Result]] = []
    for output, select in (("packages", "drvPath"), ("apps", "program"), ("checks", "drvPath"),
                           ("devShells", "drvPath")):
        names, failed = ev.attr_names(output)
        if failed is not None:
            jobs.append(lambda r=failed: r)
        for name in names:
            jobs.append(lambda a=f"{output}.{SYSTEM}.{name}", s=select: ev.flake_attr(a, s))
    jobs.append(lambda: ev.flake_attr(f"formatter.{SYSTEM}", "drvPath"))
    for backend in NIXOS:
        for part in ("toplevel", "unit"):
            jobs.append(lambda a=f"nixos.{backend}.{part}": ev.config(a, has_home_manager))
    if has_home_manager:
        jobs.append(lambda: ev.config("homeManager", True))
    else:
        jobs.append(lambda: Result("homeManager", "skip", "no --home-manager tree given"))
    jobs.append(ev.flake_check)
    return jobs


def names_file(names: list[str], tree: str) -> str:
    pin = json.loads((REPO / "flake.lock").read_text())["nodes"]["nixpkgs"]["locked"]["rev"]
    paragraphs = [
        ("python3Packages attribute names nixpkgs has, one a line: tests/nix/test_python_names.py checks "
         "that every name the flake's packages take from python3Packages is here or added by "
         "pkgs/python-packages.nix (the check that would have caught spandrel)."),
        f"Source: python313Packages with config.allowAliases = false, of the nixpkgs tree {tree}.",
        (f"The flake pins nixpkgs {pin}. Unless the tree above is that revision, a name may be here and "
         "not at the pin (a tree newer than the pin holds packages added since): check when a new name "
         "entered nixpkgs before relying on it."),
        "Written by tools/real-nixpkgs-eval.py --python-names.",
    ]
    header = [line for p in paragraphs for line in textwrap.wrap(p, 98, break_on_hyphens=False, break_long_words=False)]
    return "".join(f"# {line}\n" for line in header) + "".join(f"{n}\n" for n in names)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--nixpkgs", type=Path, required=True, help="a nixpkgs tree (best a git repository)")
    ap.add_argument("--home-manager", type=Path, help="a Home Manager tree (release-25.11 for our pin)")
    ap.add_argument("--root", type=Path, default=Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache"))
                    / "comfyx/nix-chroot", help="the chroot holding Nix (created when it has none)")
    ap.add_argument("--jobs", type=int, default=min(4, os.cpu_count() or 1), help="evaluations at once")
    ap.add_argument("--tree-hole", metavar="REGEX",
                    help="mark failures whose error matches as the tree's (gaps of a slimmed tree)")
    ap.add_argument("--python-names", type=Path, metavar="FILE",
                    help="write the tree's python3Packages names to FILE instead of evaluating the flake")
    args = ap.parse_args(argv)
    for name, tree in (("--nixpkgs", args.nixpkgs), ("--home-manager", args.home_manager)):
        if tree is not None and not tree.is_dir():
            ap.error(f"{name} {tree}: no such directory")
    if not (args.nixpkgs / "lib/.version").is_file() or not (args.nixpkgs / "nixos").is_dir():
        ap.error(f"--nixpkgs {args.nixpkgs}: not a nixpkgs tree (no lib/.version or nixos/)")
    if args.home_manager is not None and not (args.home_manager / "modules/default.nix").is_file():
        ap.error(f"--home-manager {args.home_manager}: not a Home Manager tree (no modules/default.nix)")
    if args.jobs < 1:
        ap.error(f"--jobs {args.jobs}: at least 1")
    try:
        args.tree_hole = re.compile(args.tree_hole) if args.tree_hole else None
    except re.error as err:
        ap.error(f"--tree-hole {args.tree_hole!r}: {err}")
    return args


def report(jobs: list[Callable[[], Result]], parallel: int) -> int:
    """Run the evaluations, print each result in order as it is known, then the counts."""
    results = []
    with concurrent.futures.ThreadPoolExecutor(parallel) as pool:
        for future in [pool.submit(job) for job in jobs]:
            r = future.result()
            results.append(r)
            label = {"tree": "FAIL [tree]"}.get(r.status, r.status)
            print(f"{label:<5} {r.name}" + (f"  {r.detail}" if r.status in ("ok", "skip") else ""))
            if r.status in ("FAIL", "tree"):
                print("\n".join(f"      {line}" for line in r.detail.splitlines()))
            sys.stdout.flush()
    n = {s: sum(r.status == s for r in results) for s in ("ok", "FAIL", "tree", "skip")}
    print(f"{n['ok']} ok, {n['FAIL'] + n['tree']} FAIL ({n['tree']} of them the tree's), {n['skip']} skipped")
    return 1 if n["FAIL"] else 0


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        nix_chroot.prepare(args.root)
    except (nix_chroot.ChrootError, subprocess.CalledProcessError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    nixpkgs = args.nixpkgs.resolve()
    is_git = (nixpkgs / ".git").exists()
    with tempfile.TemporaryDirectory(prefix="comfyx-src-") as src:
        snapshot(Path(src))
        binds = {"/src/comfyx": Path(src), "/src/nixpkgs": nixpkgs}
        if args.home_manager:
            binds["/src/home-manager"] = args.home_manager.resolve()
        with nix_chroot.mounted(args.root, binds):
            try:
                version = nix_chroot.nix_version(args.root)
            except nix_chroot.ChrootError as err:
                print(f"error: {err}", file=sys.stderr)
                return 2
            print(f"nix      {'.'.join(map(str, version))} in {args.root} (offline, no substituters, no IFD)")
            print(f"nixpkgs  {describe(nixpkgs)}")
            if not is_git:
                print("         (not a git repository: every evaluation re-hashes the whole tree)")
            if args.home_manager:
                print(f"home-mgr {describe(args.home_manager.resolve())}")
            ev = Evaluator(args.root, "git+file:///src/nixpkgs" if is_git else "path:/src/nixpkgs", args.tree_hole)
            if not args.python_names:
                return report(targets(ev, args.home_manager is not None), args.jobs)
            try:
                names = ev.python_names()
            except RuntimeError as err:
                print(f"error: {err}", file=sys.stderr)
                return 2
            args.python_names.write_text(names_file(names, describe(nixpkgs)))
            print(f"wrote {len(names)} names to {args.python_names}")
            return 0


if __name__ == "__main__":
    sys.exit(main())
