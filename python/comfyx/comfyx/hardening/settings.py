"""The hardening settings of ``comfyx serve``: one flag and one environment variable each.

Each setting is read once at start-up, from its flag or else its environment variable
(``--max-prompt-bytes`` ↔ ``COMFYX_MAX_PROMPT_BYTES``), checked against what it allows,
and from then on travels as a :class:`HardeningSettings`. A bad value stops start-up
with a message naming the setting, the value and what is allowed.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

MIB = 1024 * 1024


class SettingsError(ValueError):
    """A hardening setting has a value it does not allow; the message says which and what is allowed."""


@dataclass(frozen=True)
class HardeningSettings:
    enabled: bool = True  # False: none of the guarantees below, ComfyUI as it is
    max_prompt_bytes: int = 16 * MIB  # largest POST /prompt body
    max_prompt_depth: int = 64  # deepest nesting of arrays and objects in a POST /prompt body
    persist_history: bool = True  # keep the history in SQLite across restarts
    history_size: int = 1000  # entries kept, in memory and on disk
    shutdown_timeout: float = 30.0  # seconds SIGTERM/SIGINT waits for the running prompt to stop


@dataclass(frozen=True)
class _Setting:
    field: str
    flag: str
    env: str
    parse: Callable[[str], Any]
    allowed: str
    help: str

    @property
    def dest(self) -> str:
        return self.flag.removeprefix("--").replace("-", "_")


def _boolean(text: str) -> bool:
    value = text.strip().lower()
    if value in ("1", "true", "yes", "on"):
        return True
    if value in ("0", "false", "no", "off"):
        return False
    raise ValueError(text)


def _whole(low: int, high: int) -> Callable[[str], int]:
    def parse(text: str) -> int:
        value = int(text.strip().replace("_", ""))
        if not low <= value <= high:
            raise ValueError(text)
        return value

    return parse


def _seconds(low: float, high: float) -> Callable[[str], float]:
    def parse(text: str) -> float:
        value = float(text)
        if not low <= value <= high:  # also refuses nan
            raise ValueError(text)
        return value

    return parse


# The depth limit stops at 256: ComfyUI copies every queued prompt with copy.deepcopy, which
# recurses about twice per level and fails near 500 levels under Python's recursion limit.
SETTINGS = (
    _Setting("enabled", "--hardening", "COMFYX_HARDENING", _boolean, "on or off (1/0, true/false, yes/no)",
             "all of comfyx serve's hardening; --no-hardening leaves ComfyUI's server exactly as it is"),
    _Setting("max_prompt_bytes", "--max-prompt-bytes", "COMFYX_MAX_PROMPT_BYTES", _whole(1024, 1024 * MIB),
             "a whole number of bytes from 1024 to 1073741824", "largest POST /prompt body accepted"),
    _Setting("max_prompt_depth", "--max-prompt-depth", "COMFYX_MAX_PROMPT_DEPTH", _whole(8, 256),
             "a whole number from 8 to 256", "deepest nesting of arrays and objects in a POST /prompt body"),
    _Setting("persist_history", "--persist-history", "COMFYX_PERSIST_HISTORY", _boolean,
             "on or off (1/0, true/false, yes/no)", "keep the prompt history in SQLite (in ComfyUI's user "
             "directory) across restarts"),
    _Setting("history_size", "--history-size", "COMFYX_HISTORY_SIZE", _whole(1, 100_000),
             "a whole number from 1 to 100000", "history entries kept, in memory and on disk"),
    _Setting("shutdown_timeout", "--shutdown-timeout", "COMFYX_SHUTDOWN_TIMEOUT", _seconds(0.0, 3600.0),
             "a number of seconds from 0 to 3600", "on SIGTERM/SIGINT, how long to wait for the running "
             "prompt to stop at a node boundary before exiting anyway"),
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The hardening flags; each defaults to its environment variable, then to the built-in default."""
    defaults = HardeningSettings()
    group = parser.add_argument_group("hardening (comfyx serve's guarantees beyond stock ComfyUI)")
    for setting in SETTINGS:
        default = getattr(defaults, setting.field)
        shown = ("on" if default else "off") if isinstance(default, bool) else default
        text = f"{setting.help} (default: ${setting.env}, else {shown})"
        if setting.parse is _boolean:
            group.add_argument(setting.flag, action=argparse.BooleanOptionalAction, default=None, help=text)
        else:
            group.add_argument(setting.flag, default=None, metavar="N", help=text)


def from_args(args: argparse.Namespace, environ: Mapping[str, str]) -> HardeningSettings:
    """The settings from parsed flags, else ``environ``, else the defaults; raises SettingsError."""
    values = {}
    for setting in SETTINGS:
        given = getattr(args, setting.dest, None)
        source = setting.flag
        if given is None and environ.get(setting.env, "").strip():
            given, source = environ[setting.env], f"${setting.env}"
        if given is None:
            continue
        if isinstance(given, bool):
            values[setting.field] = given
            continue
        try:
            values[setting.field] = setting.parse(given)
        except ValueError:
            raise SettingsError(f"{source}={given!r} is not allowed: {setting.flag} takes "
                                f"{setting.allowed}") from None
    return HardeningSettings(**values)
