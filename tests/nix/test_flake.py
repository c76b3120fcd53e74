"""The flake's outputs exist under the names the README and the issue promise, and the ComfyUI
source applies every patches/comfyui/*.patch (eval-flake.nix, nixpkgs' lib standing in)."""

from __future__ import annotations

import shutil
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def test_outputs(flake):
    f = flake()
    assert f["nixpkgsUrl"] == "github:NixOS/nixpkgs/nixos-25.11"
    assert {"packages", "apps", "overlays", "nixosModules", "homeManagerModules", "checks",
            "devShells", "formatter"} <= set(f["outputs"])
    assert set(f["systems"]["packages"]) == {"x86_64-linux"}
    assert f["hasFormatter"]


def test_packages_apps_checks(flake):
    f = flake()
    assert set(f["packageNames"]) == {
        "default", "comfyui-cpu", "comfyui-cuda", "comfyui-ipex", "comfyui-ipex-cpu", "comfyui-tpu",
        "comfyui-src", "comfyx", "comfyx-kernels", "bmf"}
    assert {"default", "cpu", "cuda", "ipex", "ipex-cpu", "tpu", "comfyx"} == set(f["appNames"])
    assert {"vm-cpu", "vm-ollama", "module-eval", "python-tests", "comfyui-cpu"} <= set(f["checkNames"])
    assert f["perSystem"]["devShells"] == ["x86_64-linux"]


def test_modules_and_overlay(flake):
    f = flake()
    assert f["modules"]["nixos"].endswith("modules/nixos/comfyui.nix")
    assert f["modules"]["homeManager"].endswith("modules/home-manager/comfyui.nix")
    assert {"comfyui-cpu", "comfyui-cuda", "comfyui-ipex", "comfyui-ipex-cpu", "comfyui-tpu", "comfyui-src", "bmf",
            "comfyuiNodes", "comfyxSources", "pythonPackagesExtensions"} <= set(f["overlayNames"])
    # spandrel: a ComfyUI requirement our nixpkgs pin lacks.
    assert {"comfyx", "comfyx-kernels", "bmf", "comfyui-frontend-package", "comfyui-workflow-templates",
            "comfyui-embedded-docs", "spandrel"} == set(f["pythonPackageNames"])


def test_comfyui_source_fetch(flake):
    fetch = flake()["comfyuiSrc"]["fetch"]
    assert (fetch["owner"], fetch["repo"]) == ("Comfy-Org", "ComfyUI")
    assert fetch["rev"] == "a125cd84b054a57729b5eecab930ca9408719832"
    assert fetch["hash"].startswith("sha256-")
    # The whole tree, as GitHub's tarball gives it: no sparse checkout.
    assert set(fetch) == {"owner", "repo", "rev", "hash"}
    assert set(flake()["comfyuiSrc"]["wholeTree"]) == {"owner", "repo", "rev", "hash"}
    # `exclude` in sources.json becomes a non-cone sparse checkout (BMF leaves out bmf_lite).
    sparse = flake()["comfyuiSrc"]["sparse"]
    assert sparse["nonConeMode"] is True and sparse["sparseCheckout"] == ["/*", "!/bmf_lite"]


def test_every_comfyui_patch_is_applied_in_name_order(flake, tmp_path):
    # A copy of the package beside a patches/comfyui directory of our own making.
    pkg = tmp_path / "pkgs" / "comfyui-src" / "package.nix"
    pkg.parent.mkdir(parents=True)
    shutil.copy(REPO / "pkgs" / "comfyui-src" / "package.nix", pkg)
    patches = tmp_path / "patches" / "comfyui"
    (patches / "sub.patch").mkdir(parents=True)  # a directory, not a patch
    for name in ("20-later.patch", "10-first.patch", "notes.md"):
        (patches / name).write_text("")
    got = flake(pkg)["comfyuiSrc"]["patches"]
    assert got == [str(patches / "10-first.patch"), str(patches / "20-later.patch")]


def test_repository_patches_are_applied(flake):
    expected = sorted(p.name for p in (REPO / "patches" / "comfyui").glob("*.patch") if p.is_file()) \
        if (REPO / "patches" / "comfyui").is_dir() else []
    got = [Path(p).name for p in flake()["comfyuiSrc"]["patches"]]
    assert got == expected
