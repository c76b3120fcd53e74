"""The hardening settings: flags over environment over defaults, checked once, named in every error."""

from __future__ import annotations

import dataclasses

import pytest

from comfyx.hardening.settings import GROUP, HardeningSettings
from comfyx.settings.spec import SettingsError
from comfyx.testing.settings import startup

SETTINGS = GROUP.settings


def hardening(*argv: str, environ: dict[str, str] | None = None) -> HardeningSettings:
    return startup(*argv, environ=environ).settings.hardening


def test_every_setting_has_one_flag_and_one_variable() -> None:
    assert [s.field for s in SETTINGS] == [f.name for f in dataclasses.fields(HardeningSettings)]
    for setting in SETTINGS:
        assert setting.env == "COMFYX_" + setting.flag.removeprefix("--").replace("-", "_").upper()


def test_defaults() -> None:
    settings = hardening(environ={})
    assert settings == HardeningSettings()
    assert settings.enabled and settings.persist_history
    assert settings.max_prompt_bytes == 16 * 1024 * 1024 and settings.max_prompt_depth == 64


def test_a_flag_wins_over_its_variable_which_wins_over_the_default() -> None:
    environ = {"COMFYX_MAX_PROMPT_DEPTH": "100", "COMFYX_HISTORY_SIZE": "5", "COMFYX_PERSIST_HISTORY": "off",
               "COMFYX_HARDENING": "0"}
    settings = hardening("--max-prompt-depth", "200", "--hardening", environ=environ)
    assert settings.max_prompt_depth == 200 and settings.enabled
    assert settings.history_size == 5 and not settings.persist_history


def test_settings_are_frozen() -> None:
    with pytest.raises(dataclasses.FrozenInstanceError):
        HardeningSettings().max_prompt_bytes = 1  # type: ignore[misc]


@pytest.mark.parametrize(("argv", "environ", "message"), [
    (["--max-prompt-bytes", "abc"], {}, ("--max-prompt-bytes='abc' is not allowed: --max-prompt-bytes takes a whole "
                                        "number of bytes from 1024 to 1073741824")),
    ([], {"COMFYX_MAX_PROMPT_BYTES": "10"}, "$COMFYX_MAX_PROMPT_BYTES='10' is not allowed"),
    (["--max-prompt-depth", "1000"], {}, "--max-prompt-depth takes a whole number from 8 to 256"),
    ([], {"COMFYX_HISTORY_SIZE": "0"}, ("$COMFYX_HISTORY_SIZE='0' is not allowed: --history-size takes a whole number "
                                       "from 1 to 100000")),
    ([], {"COMFYX_PERSIST_HISTORY": "maybe"}, "--persist-history takes on or off"),
    ([], {"COMFYX_SHUTDOWN_TIMEOUT": "nan"}, "--shutdown-timeout takes a number of seconds from 0 to 3600"),
])
def test_a_bad_value_names_the_setting_and_what_it_allows(argv: list[str], environ: dict, message: str) -> None:
    with pytest.raises(SettingsError) as raised:
        hardening(*argv, environ=environ)
    assert message in str(raised.value)


def test_serve_refuses_a_bad_value_before_starting_comfyui(run_comfyx, tmp_path) -> None:
    # No ComfyUI is needed: the settings are checked first.
    result = run_comfyx("serve", "--comfyui", str(tmp_path), "--max-prompt-depth", "0", timeout=60)
    assert result.returncode == 2
    assert "--max-prompt-depth='0' is not allowed: --max-prompt-depth takes a whole number from 8 to 256" in (
        result.stderr)


def test_serve_help_lists_each_setting_with_its_variable(run_comfyx) -> None:
    result = run_comfyx("serve", "--help", timeout=60)
    assert result.returncode == 0
    text = " ".join(result.stdout.split())
    for setting in SETTINGS:
        assert setting.flag in text and f"${setting.env}" in text
