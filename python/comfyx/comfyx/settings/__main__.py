"""``python -m comfyx.settings``: the settings table, as the Nix modules read it (JSON) or as the README shows it.

    python -m comfyx.settings json > modules/common/settings.json
    python -m comfyx.settings markdown

``tests/nix/test_settings_table.py`` fails when the JSON file in the repository is not what this prints.
"""

from __future__ import annotations

import argparse
import json
import sys

from comfyx.settings.tree import table


def as_json() -> str:
    return json.dumps(table(), indent=2) + "\n"


def as_markdown() -> str:
    """The README's settings table: Nix option, flags, variables, default, and what the setting does."""
    lines = ["| Nix option | flag | environment variable | default | what it does |", "|---|---|---|---|---|"]
    for row in table():
        flags = [row["flag"], *([row["shorthand"][0]] if row["shorthand"] else [])]
        if row["offFlag"]:
            flags.append(row["offFlag"])
        variables = [row["env"], *row["envAliases"]]
        default = row["default"]
        shown = {True: "on", False: "off"}.get(default, default) if isinstance(default, bool) else default
        lines.append(" | ".join([
            f"| {_code(row['nix'])}", ", ".join(map(_code, flags)), ", ".join(map(_code, variables)),
            _code(row["defaultText"] or ("none" if shown is None else str(shown))), f"{row['help']} |",
        ]))
    return "\n".join(lines) + "\n"


def _code(text: str | None) -> str:
    return f"`{text}`" if text else "—"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m comfyx.settings", description=__doc__.split("\n\n")[0])
    parser.add_argument("format", choices=["json", "markdown"])
    args = parser.parse_args(argv)
    sys.stdout.write(as_json() if args.format == "json" else as_markdown())
    return 0


if __name__ == "__main__":
    sys.exit(main())
