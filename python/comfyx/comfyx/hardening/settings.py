"""The hardening settings of ``comfyx serve``: one flag and one environment variable each.

Each setting is read once at start-up with every other one (:mod:`comfyx.settings.tree`), from its
flag or else its environment variable (``--max-prompt-bytes`` ↔ ``COMFYX_MAX_PROMPT_BYTES``),
checked against what it allows, and from then on travels as a :class:`HardeningSettings`.
"""

from __future__ import annotations

from dataclasses import dataclass

from comfyx.settings.spec import SWITCH, Group, Setting, seconds, whole

MIB = 1024 * 1024


@dataclass(frozen=True)
class HardeningSettings:
    enabled: bool = True  # False: none of the guarantees below, ComfyUI as it is
    max_prompt_bytes: int = 16 * MIB  # largest POST /prompt body
    max_prompt_depth: int = 64  # deepest nesting of arrays and objects in a POST /prompt body
    persist_history: bool = True  # keep the history in SQLite across restarts
    history_size: int = 1000  # entries kept, in memory and on disk
    shutdown_timeout: float = 30.0  # seconds SIGTERM/SIGINT waits for the running prompt to stop


# The depth limit stops at 256: ComfyUI copies every queued prompt with copy.deepcopy, which
# recurses about twice per level and fails near 500 levels under Python's recursion limit.
GROUP = Group("hardening", "hardening (comfyx serve's guarantees beyond stock ComfyUI)", (
    Setting("enabled", "--hardening", SWITCH, "all of comfyx serve's hardening; --no-hardening leaves ComfyUI's "
            "server exactly as it is", nix="hardening.enable"),
    Setting("max_prompt_bytes", "--max-prompt-bytes", whole(1024, 1024 * MIB, "bytes"),
            "largest POST /prompt body accepted", nix="hardening.maxPromptBytes"),
    Setting("max_prompt_depth", "--max-prompt-depth", whole(8, 256), "deepest nesting of arrays and objects in a "
            "POST /prompt body", nix="hardening.maxPromptDepth"),
    Setting("persist_history", "--persist-history", SWITCH, "keep the prompt history in SQLite (in ComfyUI's user "
            "directory) across restarts", nix="hardening.persistHistory"),
    Setting("history_size", "--history-size", whole(1, 100_000), "history entries kept, in memory and on disk",
            nix="hardening.historySize"),
    Setting("shutdown_timeout", "--shutdown-timeout", seconds(0.0, 3600.0), "on SIGTERM/SIGINT, how long to wait "
            "for the running prompt to stop at a node boundary before exiting anyway",
            nix="hardening.shutdownTimeout"),
), commands=("serve",))
