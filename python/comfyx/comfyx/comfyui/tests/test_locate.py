from pathlib import Path

import pytest
from comfyx import PINNED_COMFYUI_COMMIT, PINNED_COMFYUI_VERSION
from comfyx.comfyui.locate import ComfyUINotFoundError, find_comfyui, read_checkout


def make_tree(root: Path, version: str | None = PINNED_COMFYUI_VERSION) -> Path:
    """A directory with the files that identify a ComfyUI checkout (not a working ComfyUI)."""
    root.mkdir(parents=True, exist_ok=True)
    for name in ("main.py", "execution.py", "nodes.py", "folder_paths.py"):
        (root / name).write_text("")
    (root / "comfy").mkdir()
    if version is not None:
        (root / "comfyui_version.py").write_text(f'__version__ = "{version}"\n')
    return root


@pytest.fixture
def no_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """The default install directory, with COMFYUI_PATH unset and an empty working directory."""
    monkeypatch.delenv("COMFYUI_PATH", raising=False)
    monkeypatch.chdir(tmp_path)
    return tmp_path / "data" / "ComfyUI"


def test_explicit_directory_wins_over_environment(no_env, tmp_path, monkeypatch):
    explicit = make_tree(tmp_path / "explicit")
    monkeypatch.setenv("COMFYUI_PATH", str(make_tree(tmp_path / "env")))
    assert find_comfyui(explicit, no_env).path == explicit.resolve()


def test_environment_then_current_directory_then_default_install(no_env, tmp_path, monkeypatch):
    default = make_tree(tmp_path / "data" / "ComfyUI")
    assert find_comfyui(None, no_env).path == default.resolve()
    cwd = make_tree(tmp_path / "cwd")
    monkeypatch.chdir(cwd)
    assert find_comfyui(None, no_env).path == cwd.resolve()
    env = make_tree(tmp_path / "env")
    monkeypatch.setenv("COMFYUI_PATH", str(env))
    assert find_comfyui(None, no_env).path == env.resolve()


def test_bad_environment_path_is_an_error_not_a_fallback(no_env, tmp_path, monkeypatch):
    make_tree(tmp_path / "data" / "ComfyUI")
    monkeypatch.setenv("COMFYUI_PATH", str(tmp_path / "nowhere"))
    with pytest.raises(ComfyUINotFoundError, match="COMFYUI_PATH.*missing: main.py"):
        find_comfyui(None, no_env)


def test_nothing_found_says_how_to_fix_it(no_env):
    with pytest.raises(ComfyUINotFoundError, match="comfyx comfyui install"):
        find_comfyui(None, no_env)


def test_pinned_version_has_no_warning_and_others_name_the_pin(tmp_path):
    assert read_checkout(make_tree(tmp_path / "pinned")).pin_warning() is None
    warning = read_checkout(make_tree(tmp_path / "newer", version="0.3.99")).pin_warning()
    assert "0.3.99" in warning and f"v{PINNED_COMFYUI_VERSION}" in warning
    assert "unknown version" in read_checkout(make_tree(tmp_path / "bare", version=None)).pin_warning()


def test_git_commit_is_read_from_loose_and_packed_refs(tmp_path):
    tree = make_tree(tmp_path / "c")
    git = tree / ".git"
    (git / "refs" / "heads").mkdir(parents=True)
    (git / "HEAD").write_text("ref: refs/heads/master\n")
    (git / "packed-refs").write_text(f"# pack-refs\n{PINNED_COMFYUI_COMMIT} refs/heads/master\n")
    assert read_checkout(tree).commit == PINNED_COMFYUI_COMMIT
    (git / "refs" / "heads" / "master").write_text("1" * 40 + "\n")
    assert read_checkout(tree).commit == "1" * 40
    (git / "HEAD").write_text("2" * 40 + "\n")
    assert read_checkout(tree).commit == "2" * 40
