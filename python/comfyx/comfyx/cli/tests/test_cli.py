"""The comfyx command without a ComfyUI checkout: help, argument routing, doctor, install errors."""

import importlib.metadata
import importlib.util
import json
import platform

import pytest
from comfyx.cli.main import build_parser, split_passthrough


def test_every_command_has_readable_help(run_comfyx):
    for command in ([], ["serve"], ["run"], ["doctor"], ["bench"], ["comfyui", "install"]):
        result = run_comfyx(*command, "--help")
        assert result.returncode == 0, result.stderr
        assert "usage: comfyx" in result.stdout
    assert "[--] [ComfyUI options ...]" in run_comfyx("serve", "--help").stdout


def test_comfyui_options_pass_through_untouched():
    ours, theirs = split_passthrough(["--engine", "stock", "--", "--cpu", "--port", "9000", "--", "x"])
    assert ours == ["--engine", "stock"] and theirs == ["--cpu", "--port", "9000", "--", "x"]
    args, unknown = build_parser().parse_known_args(["serve", "--cache-lru", "4", "--comfyui", "/c", "--listen"])
    assert args.comfyui == "/c" and unknown == ["--cache-lru", "4", "--listen"]


def test_our_options_are_not_abbreviated_into_comfyui_options():
    # ComfyUI's --cpu must not be taken as an abbreviation of anything of ours.
    args, unknown = build_parser().parse_known_args(["serve", "--comfy", "x"])
    assert args.comfyui is None and unknown == ["--comfy", "x"]


def test_unknown_options_are_rejected_outside_serve_and_run(run_comfyx):
    result = run_comfyx("doctor", "--bogus")
    assert result.returncode == 2 and "unrecognized arguments: --bogus" in result.stderr


def test_doctor_json_is_true_for_this_machine(run_comfyx, monkeypatch, tmp_path):
    monkeypatch.delenv("COMFYUI_PATH", raising=False)
    result = run_comfyx("doctor", "--json", cwd=tmp_path, env={"PATH": "/usr/bin:/bin", "HOME": str(tmp_path)})
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["python"]["version"] == platform.python_version()
    try:
        torch_version = importlib.metadata.version("torch")
    except importlib.metadata.PackageNotFoundError:
        torch_version = None
    assert report["versions"]["torch"] == torch_version
    if torch_version is not None:
        import torch

        cuda = report["accelerators"]["cuda"]
        assert cuda["available"] == torch.cuda.is_available()
        assert len(cuda["devices"]) == (torch.cuda.device_count() if cuda["available"] else 0)
    if not any(info["available"] for info in report["accelerators"].values()):
        assert report["backend"]["auto"] == "cpu"
    assert report["comfyui"]["found"] is False and "comfyx comfyui install" in report["comfyui"]["reason"]
    assert report["engines"]["stock"] == {"available": False, "reason": "no ComfyUI checkout found"}
    assert report["paths"]["comfyx_cache"] == str(tmp_path / ".cache" / "comfyx")
    fast = report["fast_path"]
    assert fast["kernels"]["available"] == (importlib.util.find_spec("comfyx_kernels") is not None)
    capable = [d for d in report["accelerators"]["cuda"]["devices"] if float(d["compute_capability"]) >= 8.9]
    assert fast["fp8"]["available"] == bool(capable and fast["kernels"]["available"])
    if not fast["fp8"]["available"]:
        assert "fp8 GEMMs need" in fast["fp8"]["reason"] or not fast["kernels"]["available"]
    triton = importlib.util.find_spec("triton") is not None
    assert fast["nvfp4_mxfp8"]["available"] == (fast["fp8"]["available"] and triton)
    if not fast["fp8"]["available"]:
        assert fast["nvfp4_mxfp8"]["reason"] == fast["fp8"]["reason"]
    assert fast["cuda_graphs"]["available"] == (report["accelerators"]["cuda"]["available"] and
                                                fast["compile"]["available"])
    if not report["accelerators"]["cuda"]["available"]:
        assert fast["cuda_graphs"]["reason"].startswith("CUDA graphs need a CUDA GPU (cuda: ")


def test_doctor_text_names_each_section(run_comfyx):
    result = run_comfyx("doctor")
    assert result.returncode == 0, result.stderr
    for section in ("versions:", "accelerators:", "engines:", "kernel backends:", "fast path (--fast):", "paths:"):
        assert section in result.stdout


def test_install_offline_fails_clearly_and_leaves_nothing_behind(run_comfyx, tmp_path):
    target = tmp_path / "ComfyUI"
    result = run_comfyx("comfyui", "install", str(target), "--repo", str(tmp_path / "no-such-repo"))
    assert result.returncode == 1
    assert "could not clone" in result.stderr and "--repo URL" in result.stderr
    assert list(tmp_path.iterdir()) == []


def test_install_refuses_to_overwrite_a_directory(run_comfyx, tmp_path):
    (tmp_path / "ComfyUI").mkdir()
    (tmp_path / "ComfyUI" / "keep.txt").write_text("mine")
    result = run_comfyx("comfyui", "install", str(tmp_path / "ComfyUI"), "--no-requirements")
    assert result.returncode == 1 and "already exists" in result.stderr
    assert (tmp_path / "ComfyUI" / "keep.txt").read_text() == "mine"


@pytest.mark.parametrize("content, message", [
    ("{not json", "Expecting property name"),
    ('{"nodes": [], "links": []}', "UI-format workflow"),
    ('{"1": {"inputs": {}}}', "node '1' is not an object with a 'class_type'"),
    ("[]", "expected a JSON object"),
])
def test_run_rejects_malformed_workflow_files_before_starting_comfyui(run_comfyx, tmp_path, content, message):
    workflow = tmp_path / "wf.json"
    workflow.write_text(content)
    result = run_comfyx("run", str(workflow), "--comfyui", str(tmp_path / "absent"))
    assert result.returncode == 2 and message in result.stderr


def test_missing_comfyui_is_a_usage_error(run_comfyx, tmp_path):
    result = run_comfyx("serve", "--comfyui", str(tmp_path))
    assert result.returncode == 2 and "is not a ComfyUI checkout" in result.stderr
