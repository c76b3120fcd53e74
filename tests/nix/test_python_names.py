"""Every python3Packages name the flake's packages take exists in nixpkgs or is ours.

python3Packages.spandrel is not in our nixpkgs pin, and every ComfyUI package failed to evaluate
against real nixpkgs ("undefined variable 'spandrel'") while the stubbed tests passed: their
stand-in package sets held every name the files asked for. eval-python-names.nix instead builds
python3Packages from nixpkgs-python-names.txt (names read from a real nixpkgs tree) plus
pkgs/python-packages.nix, and evaluates the real overlay, variants, dev shell and checks with it.
"""

from __future__ import annotations

import re
from pathlib import Path

HERE = Path(__file__).resolve().parent
NAMES_FILE = HERE / "nixpkgs-python-names.txt"
VARIANTS = {"cpu", "cuda", "ipex", "ipex-cpu", "tpu"}


def nixpkgs_names() -> set[str]:
    lines = NAMES_FILE.read_text().splitlines()
    return {line for line in lines if line and not line.startswith("#")}


def test_every_python_name_is_in_nixpkgs_or_ours(nix_eval):
    r = nix_eval("eval-python-names.nix")  # fails with nixpkgs' own error for a missing name
    assert r["nixpkgsNames"] == len(nixpkgs_names())
    assert set(r["variants"]) == VARIANTS
    for variant, names in r["variants"].items():
        assert set(names["nixpkgs"]) <= nixpkgs_names(), variant
        assert set(names["ours"]) - set(r["ours"]) <= {
            # built inside the variant's Python set (pkgs/comfyui/python.nix), not added to nixpkgs'
            "intel-extension-for-pytorch", "intel-xpu-runtime", "libtpu", "torch", "torch-xla", "torchaudio",
            "torchvision", "triton-xpu",
        }, variant
        # ComfyUI's requirement nixpkgs (at our pin and at the listed tree) does not have.
        assert "spandrel" in names["ours"] and "spandrel" not in names["nixpkgs"], variant


def test_a_name_nixpkgs_lacks_fails_the_evaluation(nix_eval_error, tmp_path):
    # The list without torchsde, which pkgs/comfyui/package.nix takes through `with ps;`, the way it
    # took spandrel: the evaluation must stop at that name, as real nixpkgs does.
    names = tmp_path / "names.txt"
    names.write_text("\n".join(sorted(nixpkgs_names() - {"torchsde"})) + "\n")
    err = nix_eval_error("eval-python-names.nix", namesFile=str(names))
    assert "undefined variable 'torchsde'" in err


def test_names_list_says_where_it_comes_from():
    header = [line for line in NAMES_FILE.read_text().splitlines() if line.startswith("#")]
    text = "\n".join(header)
    assert re.search(r"\b[0-9a-f]{40}\b", text), "the list must name the nixpkgs revision it was read from"
    assert "spandrel" not in nixpkgs_names()  # what its header says, and what the first test relies on
    assert len(nixpkgs_names()) > 5000  # a whole package set, not a hand-picked few
