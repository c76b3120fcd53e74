"""One name per setting, from the Nix option to the code: the modules' options are comfyx's settings table
(modules/common/settings.json, written by `python -m comfyx.settings json`), and each option renders the
flag that fills its setting's field, in both modules (eval-nixos.nix, eval-home-manager.nix)."""

from __future__ import annotations

import json
import shlex
from pathlib import Path

import pytest
from comfyx.cli.main import build_parser
from comfyx.settings import tree
from comfyx.settings.__main__ import as_json, as_markdown
from comfyx.settings.spec import read

REPO = Path(__file__).resolve().parents[2]
ROWS = [row for row in tree.table() if row["nix"]]
# Settings without an option: the modules choose these directories themselves (the unit's cache
# directory, the user's XDG ones).
WITHOUT_OPTION = {"--cache-dir", "--data-dir"}


def test_the_modules_table_is_the_python_table() -> None:
    assert (REPO / "modules" / "common" / "settings.json").read_text() == as_json(), (
        "regenerate it: python -m comfyx.settings json > modules/common/settings.json")


def test_every_setting_has_a_nix_option_or_a_reason() -> None:
    assert {row["flag"] for row in tree.table() if not row["nix"]} == WITHOUT_OPTION
    options = [row["nix"] for row in ROWS]
    assert len(options) == len(set(options))


def test_the_readme_shows_the_table() -> None:
    assert as_markdown() in (REPO / "README.md").read_text(), (
        "update README.md's settings table from: python -m comfyx.settings markdown")


def example(row: dict) -> object:
    """A value the setting allows that is not its default."""
    kind, default = row["kind"], row["default"]
    if kind == "switch":
        return default is not True
    if kind == "whole":
        return row["low"] if row["low"] != default else row["high"]
    if kind == "seconds":
        return row["high"]
    if kind == "choice":
        return next(c for c in row["choices"] if c != default)
    assert kind == "size", kind
    return "10GB"


def nix_value(value: object) -> str:
    return json.dumps(value)  # true/false, numbers and strings are written alike in Nix


def comfyx_fields(argv: list[str]) -> dict[tuple[str, str], object]:
    """(group, field) -> value that comfyx reads from the flags in ``argv`` (nothing from the environment)."""
    args, unknown = build_parser().parse_known_args(["serve", *argv])
    assert unknown == [], unknown
    return {(group.name, field): value for group in tree.GROUPS
            for field, value in read(group, args, {}, []).items()}


@pytest.mark.parametrize("row", ROWS, ids=[row["nix"] for row in ROWS])
@pytest.mark.parametrize("module", ["services", "programs"])
def test_an_option_renders_the_flag_of_its_setting(nixos, home, module: str, row: dict) -> None:
    value = example(row)
    option = f"{module}.comfyui.{row['nix']}"
    config = f"{{ {module}.comfyui.enable = true; {option} = {nix_value(value)}; }}"
    result = nixos(config) if module == "services" else home(config)
    service = result["unit"]["serviceConfig"] if module == "services" else result["service"]["Service"]
    argv = shlex.split(service["ExecStart"])
    fields = comfyx_fields(argv[1:argv.index("--")])
    parsed = fields[(row["group"], row["field"])]
    assert parsed == (10 * 10**9 if row["kind"] == "size" else value), (option, argv)
