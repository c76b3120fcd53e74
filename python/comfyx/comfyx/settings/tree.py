"""The settings tree: every setting, parsed once by the CLI, checked in one place, passed on explicitly.

Every setting is a :class:`~comfyx.settings.spec.Setting` of one of :data:`GROUPS`: a flag, the
environment variable named after it (``--bmf-workers`` ↔ ``COMFYX_BMF_WORKERS``) and the Nix
option that renders the flag (``bmf.workers``). :func:`parse` reads them all at start-up — flag,
else variable, else default — and resolves what depends on more than one setting or on the
machine (``--ipex-int8`` and ``--tpu-enable`` choose the backend, ``--fast`` the fast path's
parts, a missing BMF the default engine). The resulting :class:`Settings` goes to
:func:`comfyx.comfyui.launch.prepare`, which hands each part to the code that uses it: nothing
reads a setting from the environment after that, and no module keeps one in a global.
"""

from __future__ import annotations

import argparse
import dataclasses
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from comfyx import fastpath
from comfyx.backends import settings as backend_settings
from comfyx.backends.settings import BackendSettings, IntelSettings
from comfyx.backends.tpu import settings as tpu_settings
from comfyx.backends.tpu.settings import TPUSettings
from comfyx.engine import settings as engine_settings
from comfyx.engine.settings import DEFAULT_ENGINE, EngineSettings
from comfyx.fastpath import FastPathSettings
from comfyx.hardening import settings as hardening_settings
from comfyx.hardening.settings import HardeningSettings
from comfyx.paths import GROUP as PATHS
from comfyx.paths import CompileCaches, PathSettings
from comfyx.settings.spec import SWITCH, Group, SettingsError, read
from comfyx.settings.spec import add_arguments as add_group_arguments

__all__ = ["GROUPS", "Settings", "SettingsError", "Startup", "add_arguments", "parse", "table"]

GROUPS: tuple[Group, ...] = (
    PATHS,
    backend_settings.BACKEND,
    engine_settings.GROUP,
    fastpath.GROUP,
    backend_settings.INTEL,
    tpu_settings.GROUP,
    hardening_settings.GROUP,
)

# The dataclass each group fills, whose field defaults are the settings' defaults.
DEFAULTS: dict[str, type] = {
    "paths": PathSettings, "backend": BackendSettings, "intel": IntelSettings, "fast": FastPathSettings,
    "tpu": TPUSettings, "engine": EngineSettings, "hardening": HardeningSettings,
}


@dataclass(frozen=True)
class Settings:
    """Every setting of ``comfyx serve`` / ``comfyx run``, resolved."""

    paths: PathSettings = field(default_factory=PathSettings)
    compile_caches: CompileCaches = field(default_factory=lambda: CompileCaches.resolve(PathSettings().cache_dir, {}))
    backend: BackendSettings = field(default_factory=BackendSettings)
    intel: IntelSettings = field(default_factory=IntelSettings)
    fast: FastPathSettings = field(default_factory=FastPathSettings)
    tpu: TPUSettings = field(default_factory=TPUSettings)
    engine: EngineSettings = field(default_factory=EngineSettings)
    hardening: HardeningSettings = field(default_factory=HardeningSettings)


@dataclass(frozen=True)
class Startup:
    """The settings, and what the user should be told about them once (fallbacks, earlier names)."""

    settings: Settings
    notes: tuple[str, ...] = ()


def add_arguments(parser: argparse.ArgumentParser, command: str) -> None:
    """The flags of every group ``command`` takes."""
    for group in GROUPS:
        if command in group.commands:
            add_group_arguments(parser, group, DEFAULTS[group.name]())


def parse(args: argparse.Namespace, environ: Mapping[str, str], command: str = "serve") -> Startup:
    """Read every setting ``command`` takes (flag, else variable, else default) and resolve the tree.

    Raises SettingsError for a value a setting does not allow or settings that contradict each
    other, EngineUnavailableError / FastPathUnavailableError for what was asked for by name and
    cannot run here.
    """
    from comfyx import engine, kernels

    notes: list[str] = []
    given = {group.name: read(group, args, environ, notes) for group in GROUPS if command in group.commands}
    paths = PathSettings(**given.get("paths", {}))
    intel = IntelSettings(**given.get("intel", {}))
    tpu = tpu_settings.build(given.get("tpu", {}))
    fast, kernels_off = fastpath.build(given.get("fast", {}), kernels.unavailable_reason())
    if kernels_off is not None:
        notes.append(f"comfyx's kernels are off ({kernels_off}); fp8 checkpoints and Flux RoPE run as ComfyUI runs "
                     "them (`comfyx doctor` says what can run)")
    settings = Settings(
        paths=paths,
        compile_caches=CompileCaches.resolve(paths.cache_dir, environ),
        backend=_backend(given.get("backend", {}).get("name", "auto"), intel, tpu),
        intel=intel,
        fast=fast,
        tpu=tpu,
        engine=_engine(given.get("engine", {}), engine.unavailable_reason, notes),
        hardening=HardeningSettings(**given.get("hardening", {})),
    )
    return Startup(settings, tuple(notes))


def _backend(name: str, intel: IntelSettings, tpu: TPUSettings) -> BackendSettings:
    """``--ipex-int8`` means the ipex backend and ``--tpu-enable`` the tpu one; contradictions are errors."""
    if intel.int8:
        if name not in ("auto", "ipex") or tpu.enable is True:
            asked = "--tpu-enable" if tpu.enable is True else f"--backend {name}"
            raise SettingsError(f"--ipex-int8 (or $COMFYX_IPEX_INT8=1) needs --backend ipex, not {asked}")
        return BackendSettings("ipex")
    if tpu.enable is True:
        if name not in ("auto", "tpu"):
            raise SettingsError(f"--tpu-enable contradicts --backend {name}")
        return BackendSettings("tpu")
    if tpu.enable is False and name == "tpu":
        raise SettingsError("--tpu-disable contradicts --backend tpu")
    return BackendSettings(name)


def _engine(values: dict[str, Any], unavailable_reason: Callable[[str], str | None],
            notes: list[str]) -> EngineSettings:
    """The engine asked for, which must run here; with none asked for, BMF where it can run, else stock."""
    from comfyx.engine import EngineUnavailableError

    name = values.get("name")
    if name is not None:
        reason = unavailable_reason(name)
        if reason is not None:
            raise EngineUnavailableError(reason)
    else:
        reason = unavailable_reason(DEFAULT_ENGINE)
        name = DEFAULT_ENGINE if reason is None else "stock"
        if reason is not None:
            notes.append(f"the BMF engine cannot run here ({reason}); prompts run on ComfyUI's stock executor "
                         "(`comfyx doctor` reports the engines; --engine stock chooses it explicitly)")
    return EngineSettings(**{**values, "name": name})


def table() -> list[dict[str, Any]]:
    """Every setting as data: what the README's table, the Nix modules and ``comfyx doctor`` show."""
    rows = []
    for group in GROUPS:
        defaults = DEFAULTS[group.name]
        for setting in group.settings:
            spec = next(f for f in dataclasses.fields(defaults) if f.name == setting.field)
            # a default in words depends on the machine or another setting: the Nix option leaves it unset
            default = None if spec.default is dataclasses.MISSING or setting.default_text else spec.default
            rows.append({
                "group": group.name,
                "field": setting.field,
                "flag": setting.flag,
                "offFlag": setting.off if setting.kind is SWITCH else None,
                "shorthand": list(setting.shorthand) if setting.shorthand else None,
                "env": setting.env,
                "envAliases": list(setting.env_aliases),
                "oldEnv": list(setting.old_env),
                "nix": setting.nix,
                "kind": setting.kind.name,
                **dict(setting.kind.nix),
                "allowed": setting.kind.allowed,
                "default": default,
                "defaultText": setting.default_text,
                "help": setting.help,
                "commands": list(group.commands),
            })
    return rows
