#!/usr/bin/env python3
"""One suite's counts from pytest's JUnit XML, and the checks that a given checkout was used.

    summarize.py RESULTS.xml NAME [--comfyui-given] [--require TEST_FILE ...]

Prints how many tests ran, how many skipped, and how many of the skips were for a missing
ComfyUI checkout or nixpkgs' lib. With ``--comfyui-given`` (CI had a checkout, named or
cloned), a test skipped for a missing checkout is an error, and so is a ``--require``d test
file of which no test passed: those are the tests the checkout exists for.
"""

from __future__ import annotations

import argparse
import sys
import xml.etree.ElementTree as ET
from collections import Counter

# The skip reasons of comfyx.testing.fixtures (NO_COMFYUI) and tests/nix/conftest.py (NO_LIB).
MISSING = {
    "ComfyUI checkout": "COMFYUI_PATH is not set",
    "nixpkgs' lib": "NIXPKGS_LIB is not set",
}


def test_file(case: ET.Element) -> str:
    """The test file a JUnit test case came from, as a path (pytest writes its module as classname)."""
    file = case.get("file")
    if file:
        return file
    module = case.get("classname", "").split(".")
    while module and module[-1][:1].isupper():  # test classes: Test*
        module.pop()
    return "/".join(module) + ".py"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("xml")
    parser.add_argument("name")
    parser.add_argument("--comfyui-given", action="store_true")
    parser.add_argument("--require", action="append", default=[], metavar="TEST_FILE")
    args = parser.parse_args(argv)

    cases = list(ET.parse(args.xml).getroot().iter("testcase"))
    skipped = [c for c in cases if c.find("skipped") is not None]
    failed = [c for c in cases if c.find("failure") is not None or c.find("error") is not None]
    passed_files = Counter(test_file(c) for c in cases if c not in skipped and c not in failed)
    missing = {
        what: sum(marker in (c.find("skipped").get("message") or "") for c in skipped)
        for what, marker in MISSING.items()
    }
    ran = len(cases) - len(skipped)
    why = ", ".join(f"{count} for a missing {what}" for what, count in missing.items())
    print(f"CI: {args.name}: {ran} tests ran ({len(failed)} failed), {len(skipped)} skipped ({why})")

    problems = []
    if ran == 0:
        problems.append("no test ran")
    if args.comfyui_given:
        if missing["ComfyUI checkout"]:
            problems.append(f"a ComfyUI checkout was given, yet {missing['ComfyUI checkout']} tests skipped for "
                            "the lack of one")
        for required in args.require:
            count = sum(n for file, n in passed_files.items() if file.endswith(required))
            print(f"CI: {args.name}: {required}: {count} passed")
            if count == 0:
                problems.append(f"a ComfyUI checkout was given, yet no test of {required} passed")
    for problem in problems:
        print(f"CI: {args.name}: {problem}", file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
