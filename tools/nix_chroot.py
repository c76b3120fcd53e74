"""A modern Nix in a Debian chroot, so that nixpkgs can be evaluated without touching the host.

nixpkgs needs Nix >= 2.18; Debian 12 ships 2.8. Debian trixie's `nix-bin` (2.26) installs with
mmdebstrap into a directory in about 20 s and runs there through chroot, with its own /nix store.
Nothing is fetched while evaluating: no substituters, `--offline`, import-from-derivation off (an
evaluation that needs a build fails instead of building).
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

MIN_NIX = (2, 18)
NIX_CONF = """\
experimental-features = nix-command flakes
substituters =
sandbox = false
build-users-group =
allow-import-from-derivation = false
"""


class ChrootError(RuntimeError):
    pass


def create(root: Path) -> None:
    """Debian trixie with nix-bin and git in `root` (mmdebstrap, needs root and the Debian mirror)."""
    if shutil.which("mmdebstrap") is None:
        raise ChrootError("mmdebstrap is not installed (Debian: apt-get install mmdebstrap)")
    root.parent.mkdir(parents=True, exist_ok=True)
    subprocess.run(
        ["mmdebstrap", "--variant=minbase", "--include=nix-bin,git,ca-certificates", "trixie", str(root),
         "http://deb.debian.org/debian"],
        check=True,
    )


def prepare(root: Path) -> None:
    """Create the chroot if it has no Nix and write nix.conf."""
    if os.geteuid() != 0:
        raise ChrootError("needs root: the chroot is created with mmdebstrap and entered with chroot")
    if not (root / "usr/bin/nix").exists():
        if root.exists() and any(root.iterdir()):
            raise ChrootError(f"{root} exists but holds no usr/bin/nix: give an empty or new directory")
        create(root)
    (root / "etc/nix").mkdir(parents=True, exist_ok=True)
    (root / "etc/nix/nix.conf").write_text(NIX_CONF)
    # The trees are bind-mounted and may belong to another user than the chroot's root.
    (root / "etc/gitconfig").write_text("[safe]\n\tdirectory = *\n")


def nix_version(root: Path) -> tuple[int, ...]:
    """Nix's version in the chroot (it needs /proc: call it inside `mounted`); too old raises."""
    proc = run(root, ["nix", "--version"], timeout=60)
    m = re.search(r"(\d+)\.(\d+)(?:\.(\d+))?", proc.stdout)
    if proc.returncode != 0 or m is None:
        raise ChrootError(f"nix --version in {root} failed: {(proc.stdout + proc.stderr).strip()}")
    version = tuple(int(g) for g in m.groups() if g is not None)
    if version < MIN_NIX:
        raise ChrootError(f"Nix {'.'.join(map(str, version))} in {root}; nixpkgs needs >= 2.18")
    return version


@contextlib.contextmanager
def mounted(root: Path, binds: dict[str, Path]) -> Iterator[None]:
    """/proc, /dev and each bind (path inside the chroot -> host directory, read-only) mounted."""
    done: list[Path] = []

    def mount(args: list[str], target: Path) -> None:
        target.mkdir(parents=True, exist_ok=True)
        subprocess.run(["mount", *args, str(target)], check=True)
        done.append(target)

    try:
        mount(["-t", "proc", "proc"], root / "proc")
        mount(["--bind", "/dev"], root / "dev")
        for inside, host in binds.items():
            target = root / inside.lstrip("/")
            mount(["--bind", str(host)], target)
            subprocess.run(["mount", "-o", "remount,bind,ro", str(target)], check=True)
        yield
    finally:
        for target in reversed(done):
            subprocess.run(["umount", "--lazy", str(target)], check=False)


def run(root: Path, argv: list[str], timeout: float) -> subprocess.CompletedProcess[str]:
    env = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "HOME": "/root", "LANG": "C.UTF-8"}
    return subprocess.run(["chroot", str(root), *argv], capture_output=True, text=True, timeout=timeout,
                          env=env, check=False)
