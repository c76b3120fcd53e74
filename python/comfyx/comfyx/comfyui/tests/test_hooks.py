import sys
import textwrap

from comfyx.comfyui.hooks import after_import


def test_callback_runs_after_the_module_body_and_before_the_importer_sees_it(tmp_path, monkeypatch):
    (tmp_path / "hooked_mod.py").write_text(textwrap.dedent("""
        VALUE = 1
    """))
    monkeypatch.syspath_prepend(str(tmp_path))
    seen = []

    def patch(module):
        seen.append(module.VALUE)
        module.VALUE = 2

    after_import("hooked_mod", patch)
    assert seen == []
    import hooked_mod

    assert seen == [1] and hooked_mod.VALUE == 2
    sys.modules.pop("hooked_mod")


def test_already_imported_module_is_called_at_once():
    calls = []
    after_import("json", calls.append)
    assert calls == [sys.modules["json"]]


def test_missing_module_keeps_its_callbacks_for_a_later_import(tmp_path, monkeypatch):
    calls = []
    after_import("late_mod", lambda m: calls.append(m.__name__))
    try:
        import late_mod
    except ImportError:
        pass
    assert calls == []
    (tmp_path / "late_mod.py").write_text("")
    monkeypatch.syspath_prepend(str(tmp_path))
    import late_mod  # noqa: F401

    assert calls == ["late_mod"]
    sys.modules.pop("late_mod")


def test_a_find_spec_probe_does_not_use_up_the_callbacks(tmp_path, monkeypatch):
    import importlib.util

    (tmp_path / "probed_mod.py").write_text("")
    monkeypatch.syspath_prepend(str(tmp_path))
    calls = []
    after_import("probed_mod", lambda m: calls.append(m.__name__))
    assert importlib.util.find_spec("probed_mod") is not None  # as cuda_malloc probes torch
    assert calls == []
    import probed_mod  # noqa: F401

    assert calls == ["probed_mod"]
    sys.modules.pop("probed_mod")
