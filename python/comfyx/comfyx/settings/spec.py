"""One setting, one name: its flag, the environment variable named after the flag, the Nix option.

A :class:`Setting` is declared once, beside the dataclass field it fills. Its flag is its name
(``--bmf-workers``); its environment variable is the flag in capitals with ``COMFYX_`` in front
(``COMFYX_BMF_WORKERS``); ``nix`` names the option of the NixOS and Home Manager modules that
renders the flag (``bmf.workers``). A value is read once, at start-up: the flag, else the
variable, else the default. Text from either source goes through the setting's one
:class:`Kind`, and a value it refuses stops start-up with a message naming the setting, the value
and what is allowed.
"""

from __future__ import annotations

import argparse
import math
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ENV_PREFIX = "COMFYX_"


class SettingsError(ValueError):
    """A setting has a value it does not allow; the message names the setting, the value and what is allowed."""


@dataclass(frozen=True)
class Kind:
    """How a setting's text is read and what it allows; ``nix`` types its option in the Nix modules."""

    name: str  # switch, whole, seconds, choice, size, directory
    parse: Callable[[str], Any]  # raises ValueError for text it refuses
    allowed: str  # "a whole number from 1 to 64": in help, errors and the Nix option's description
    nix: Mapping[str, Any] = field(default_factory=dict)  # bounds or choices for the Nix option's type


_TRUE = ("1", "true", "yes", "on")
_FALSE = ("0", "false", "no", "off")


def _switch(text: str) -> bool:
    value = text.strip().lower()
    if value in _TRUE:
        return True
    if value in _FALSE:
        return False
    raise ValueError(text)


SWITCH = Kind("switch", _switch, "on or off (1/0, true/false, yes/no)")


def whole(low: int, high: int, unit: str = "") -> Kind:
    def parse(text: str) -> int:
        value = int(text.strip().replace("_", ""))
        if not low <= value <= high:
            raise ValueError(text)
        return value

    of = f" of {unit}" if unit else ""
    return Kind("whole", parse, f"a whole number{of} from {low} to {high}", {"low": low, "high": high})


def seconds(low: float, high: float) -> Kind:
    def parse(text: str) -> float:
        value = float(text)
        if not low <= value <= high:  # also refuses nan
            raise ValueError(text)
        return value

    return Kind("seconds", parse, f"a number of seconds from {low:g} to {high:g}", {"low": low, "high": high})


def choice(*choices: str) -> Kind:
    def parse(text: str) -> str:
        value = text.strip()
        if value not in choices:
            raise ValueError(text)
        return value

    return Kind("choice", parse, f"one of {', '.join(choices)}", {"choices": list(choices)})


# Decimal units as disks and nixpkgs' options count them (GB = 10^9), binary ones with an i (GiB = 2^30).
SIZE_UNITS = {"": 1, "B": 1, "KB": 10**3, "MB": 10**6, "GB": 10**9, "TB": 10**12,
              "KIB": 2**10, "MIB": 2**20, "GIB": 2**30, "TIB": 2**40}
SIZE_PATTERN = r"([0-9]+(\.[0-9]+)?) ?([kKmMgGtT]i?[bB]|[bB])?"


def _size(text: str) -> int:
    match = re.fullmatch(SIZE_PATTERN, text.strip())
    if match is None:
        raise ValueError(text)
    value = float(match.group(1)) * SIZE_UNITS[(match.group(3) or "").upper()]
    if not math.isfinite(value) or value < 1:
        raise ValueError(text)
    return int(value)


SIZE = Kind("size", _size, 'a size in bytes, such as "10GB", "512MiB" or 1073741824', {"pattern": SIZE_PATTERN})


def _directory(text: str) -> Path:
    if not text.strip():
        raise ValueError(text)
    return Path(text).expanduser()


DIRECTORY = Kind("directory", _directory, "a directory")


@dataclass(frozen=True)
class Setting:
    """A setting of a group: the field it fills, its flag (and so its variable), how it reads, its Nix option."""

    field: str
    flag: str
    kind: Kind
    help: str
    nix: str | None = None  # below services.comfyui / programs.comfyui; None: the modules set no option
    off_flag: str | None = None  # a switch's flag that turns it off (default: --no-<name>)
    shorthand: tuple[str, str] | None = None  # ("--fast", "performance"): a flag meaning one value
    env_aliases: tuple[str, ...] = ()  # published names read too (the flag's variable wins)
    old_env: tuple[str, ...] = ()  # earlier names still read, with a warning at start-up
    default_text: str | None = None  # the default in words, where it depends on the machine or another setting

    @property
    def env(self) -> str:
        return ENV_PREFIX + self.flag.removeprefix("--").replace("-", "_").upper()

    @property
    def dest(self) -> str:
        return self.flag.removeprefix("--").replace("-", "_")

    @property
    def off(self) -> str:
        """The flag that turns a switch off."""
        return self.off_flag or f"--no-{self.flag.removeprefix('--')}"


@dataclass(frozen=True)
class Group:
    """Settings that fill one dataclass of the settings tree, and the commands that take their flags."""

    name: str
    title: str
    settings: tuple[Setting, ...]
    commands: tuple[str, ...] = ("serve", "run")


_METAVARS = {"whole": "N", "seconds": "SECONDS", "size": "SIZE", "directory": "DIR"}


def add_arguments(parser: argparse.ArgumentParser, group: Group, defaults: object) -> None:
    """The group's flags; each defaults to its variable, then to the field's default in ``defaults``."""
    section = parser.add_argument_group(group.title)
    for setting in group.settings:
        default = getattr(defaults, setting.field)
        shown = ("on" if default else "off") if isinstance(default, bool) else default
        shown = setting.default_text or ("none" if shown is None else shown)
        variables = " or ".join(f"${name}" for name in (setting.env, *setting.env_aliases))
        text = f"{setting.help}; takes {setting.kind.allowed} (default: {variables}, else {shown})".replace("%", "%%")
        if setting.kind is SWITCH and setting.off_flag is None:
            section.add_argument(setting.flag, dest=setting.dest, action=argparse.BooleanOptionalAction,
                                 default=None, help=text)
        elif setting.kind is SWITCH:
            both = section.add_mutually_exclusive_group()
            both.add_argument(setting.flag, dest=setting.dest, action="store_const", const=True, default=None,
                              help=text)
            both.add_argument(setting.off_flag, dest=setting.dest, action="store_const", const=False,
                              help=f"the opposite of {setting.flag}")
        else:
            choices = setting.kind.nix.get("choices")
            metavar = "{" + ",".join(choices) + "}" if choices else _METAVARS[setting.kind.name]
            section.add_argument(setting.flag, dest=setting.dest, default=None, metavar=metavar, help=text)
        if setting.shorthand is not None:
            flag, value = setting.shorthand
            section.add_argument(flag, dest=setting.dest, action="store_const", const=value,
                                 help=f"the same as {setting.flag} {value}")


def read(group: Group, args: argparse.Namespace, environ: Mapping[str, str], notes: list[str]) -> dict[str, Any]:
    """The values given for ``group``'s settings (by flag, else variable), checked; unset ones are left out.

    ``notes`` gets a warning for each value read from an earlier variable name.
    """
    values: dict[str, Any] = {}
    for setting in group.settings:
        given, source = getattr(args, setting.dest, None), setting.flag
        if isinstance(given, bool):
            values[setting.field] = given
            continue
        if given is None:
            for name in (setting.env, *setting.env_aliases, *setting.old_env):
                if environ.get(name, "").strip():
                    given, source = environ[name], f"${name}"
                    if name in setting.old_env:
                        notes.append(f"${name} is an earlier name of ${setting.env} ({setting.flag}); it is read "
                                     "for now, rename it")
                    break
        if given is None:
            continue
        try:
            values[setting.field] = setting.kind.parse(given)
        except ValueError:
            raise SettingsError(f"{source}={given!r} is not allowed: {setting.flag} takes "
                                f"{setting.kind.allowed}") from None
    return values
