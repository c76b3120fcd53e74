"""`comfyx serve` and `comfyx run` on a real ComfyUI checkout (COMFYUI_PATH), CPU only."""

import json
import signal
import subprocess
import textwrap
import time
from pathlib import Path

import pytest
from comfyx import PINNED_COMFYUI_VERSION
from comfyx.testing.images import image_format
from comfyx.testing.server import PromptRejectedError, comfyx_command
from comfyx.testing.workflows import txt2img

pytestmark = [pytest.mark.comfyui, pytest.mark.slow]

# A node defined with ComfyUI's node protocol that always fails, loaded through
# extra_model_paths' custom_nodes, to see how a node error is reported.
FAILING_NODE = textwrap.dedent('''
    class ComfyxTestFail:
        CATEGORY = "testing"
        FUNCTION = "fail"
        RETURN_TYPES = ("IMAGE",)

        @classmethod
        def INPUT_TYPES(cls):
            return {"required": {"image": ("IMAGE",)}}

        def fail(self, image):
            raise ValueError("the test node fails on purpose")

    NODE_CLASS_MAPPINGS = {"ComfyxTestFail": ComfyxTestFail}
''')


@pytest.fixture
def failing_node_args(tmp_path, comfyui):
    nodes = tmp_path / "test_nodes"
    nodes.mkdir()
    (nodes / "comfyx_test_fail.py").write_text(FAILING_NODE)
    config = tmp_path / "extra.yaml"
    config.write_text(f"test_nodes:\n  base_path: {tmp_path}\n  custom_nodes: test_nodes\n")
    return ["--extra-model-paths-config", str(config)]


def failing_workflow() -> dict:
    return {
        "1": {"class_type": "EmptyImage", "inputs": {"width": 8, "height": 8, "batch_size": 1, "color": 0}},
        "2": {"class_type": "ComfyxTestFail", "inputs": {"image": ["1", 0]}},
        "3": {"class_type": "PreviewImage", "inputs": {"images": ["2", 0]}},
    }


def assert_png(path: Path, size: tuple[int, int] = (64, 64)) -> None:
    assert image_format(path) == ("PNG", size)


def test_serve_answers_and_runs_txt2img_to_a_png(comfyx_server, tiny_models, tmp_path):
    out = tmp_path / "out"
    server = comfyx_server(*tiny_models.comfyui_args(), "--output-directory", str(out))
    stats = server.get_json("/system_stats")
    assert stats["system"]["comfyui_version"] == PINNED_COMFYUI_VERSION
    assert "ComfyxSystemInfo" in server.get_json("/object_info/ComfyxSystemInfo")

    run = server.run_prompt(txt2img(prefix="served"))
    types = run.event_types()
    assert types[0] == "execution_start" and "execution_success" in types
    assert {"execution_cached", "executing", "progress", "executed"} <= set(types)
    assert run.history["status"]["status_str"] == "success"
    images = run.history["outputs"]["7"]["images"]
    assert [image["filename"] for image in images] == ["served_00001_.png"]
    assert_png(out / "served_00001_.png")

    # ComfyUI's default cache: the same prompt again executes nothing.
    again = server.run_prompt(txt2img(prefix="served"))
    assert sorted(again.first("execution_cached")["nodes"]) == sorted(txt2img())
    assert [data["node"] for event, data in again.events if event == "executing"] == [None]


def test_serve_passes_comfyui_flags_through(comfyx_server, tiny_models, tmp_path):
    server = comfyx_server(*tiny_models.comfyui_args(), "--cache-none", "--output-directory", str(tmp_path))
    server.run_prompt(txt2img(prefix="nocache"))
    again = server.run_prompt(txt2img(prefix="nocache"))
    assert again.first("execution_cached")["nodes"] == []  # --cache-none reached ComfyUI
    assert (tmp_path / "nocache_00002_.png").exists()


def test_serve_rejects_an_invalid_workflow_with_comfyuis_validation(comfyx_server, tiny_models):
    server = comfyx_server(*tiny_models.comfyui_args())
    with pytest.raises(PromptRejectedError) as rejected:
        server.run_prompt(txt2img(checkpoint="missing.safetensors"))
    assert rejected.value.status == 400
    assert rejected.value.body["node_errors"]["1"]["errors"][0]["message"] == "Value not in list"


def test_run_writes_the_png_and_prints_its_path(run_comfyx, comfyui, tiny_models, tmp_path):
    workflow = tmp_path / "txt2img.json"
    workflow.write_text(json.dumps(txt2img(prefix="headless")))
    result = run_comfyx("run", str(workflow), "--comfyui", str(comfyui), "--output-dir", str(tmp_path / "out"),
                        "--", "--cpu", *tiny_models.comfyui_args())
    assert result.returncode == 0, result.stderr[-3000:]
    written = tmp_path / "out" / "headless_00001_.png"
    assert result.stdout.splitlines() == [str(written)]
    assert_png(written)
    assert "▶ 5 KSampler" in result.stderr and "step" in result.stderr


def test_run_invalid_workflow_exits_2_with_comfyuis_message(run_comfyx, comfyui, tiny_models, tmp_path):
    workflow = tmp_path / "bad.json"
    workflow.write_text(json.dumps(txt2img(checkpoint="missing.safetensors")))
    result = run_comfyx("run", str(workflow), "--comfyui", str(comfyui), "--", "--cpu", *tiny_models.comfyui_args())
    assert result.returncode == 2
    assert "Prompt outputs failed validation" in result.stderr
    assert "node 1 (CheckpointLoaderSimple): Value not in list" in result.stderr


def test_run_node_error_names_the_node(run_comfyx, comfyui, failing_node_args, tmp_path):
    workflow = tmp_path / "fail.json"
    workflow.write_text(json.dumps(failing_workflow()))
    result = run_comfyx("run", str(workflow), "--comfyui", str(comfyui), "--", "--cpu", *failing_node_args)
    assert result.returncode == 1
    assert "node 2 (ComfyxTestFail) failed: ValueError: the test node fails on purpose" in result.stderr


def test_server_survives_a_node_error_and_runs_the_next_prompt(comfyx_server, failing_node_args, tmp_path):
    server = comfyx_server(*failing_node_args, "--output-directory", str(tmp_path))
    failed = server.run_prompt(failing_workflow())
    error = failed.first("execution_error")
    assert error["node_id"] == "2" and error["node_type"] == "ComfyxTestFail"
    assert error["exception_message"].strip() == "the test node fails on purpose"
    save = {"class_type": "SaveImage", "inputs": {"images": ["1", 0], "filename_prefix": "after"}}
    ok = server.run_prompt({"1": failing_workflow()["1"], "3": save})
    assert "execution_success" in ok.event_types()
    assert_png(tmp_path / "after_00001_.png", size=(8, 8))


def test_run_ctrl_c_interrupts_and_exits_130(comfyui, tiny_models, tmp_path):
    workflow = tmp_path / "long.json"
    workflow.write_text(json.dumps(txt2img(steps=500, prefix="never")))
    process = subprocess.Popen(
        [*comfyx_command(), "run", str(workflow), "--comfyui", str(comfyui), "--output-dir", str(tmp_path / "out"),
         "--", "--cpu", *tiny_models.comfyui_args()],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    seen = ""
    for line in process.stderr:  # wait until sampling has started
        seen += line
        if "▶ 5 KSampler" in line:
            break
    time.sleep(2)
    process.send_signal(signal.SIGINT)
    stdout, stderr = process.communicate(timeout=120)
    assert process.returncode == 130, seen + stderr
    assert "interrupted" in stderr and stdout == ""
    assert not (tmp_path / "out").exists() or not list((tmp_path / "out").iterdir())


def test_a_port_in_use_is_a_start_up_error_naming_it(run_comfyx, comfyui, tmp_path):
    import socket

    (tmp_path / "user").mkdir()
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = run_comfyx("serve", "--comfyui", str(comfyui), "--", "--cpu", "--port", str(port),
                            "--user-directory", str(tmp_path / "user"), timeout=300)
    assert result.returncode == 2, result.stderr[-2000:]
    assert (f"comfyx: error: ComfyUI cannot listen: error while attempting to bind on address ('127.0.0.1', {port}): "
            "address already in use") in result.stderr
    assert "Traceback" not in result.stderr
