"""`comfyx serve --backend tpu` on real ComfyUI, torch_xla's CPU client (PJRT_DEVICE=CPU).

Needs torch==2.9.0 + torch_xla==2.9.0 (their own virtualenv) and COMFYUI_PATH.
"""

import json
import random
from pathlib import Path

import pytest
from comfyx.testing.images import image_format
from comfyx.testing.workflows import txt2img

pytest.importorskip("torch_xla", reason="torch_xla is not installed (venv with torch==2.9.0 torch_xla==2.9.0)")

pytestmark = [pytest.mark.comfyui, pytest.mark.slow]

# Two 64-px buckets (width x height); small, because XLA's CPU client decodes with the full SD VAE.
BUCKETS = ((64, 64), (128, 64))


def mixed_sizes(count: int, seed: int = 5) -> list[tuple[int, int]]:
    """Sizes (multiples of 8, as ComfyUI's latents are) spread over both buckets."""
    rng = random.Random(seed)
    sizes = []
    for index in range(count):
        bucket_w, bucket_h = BUCKETS[index % len(BUCKETS)]
        sizes.append((rng.randrange(bucket_w - 48, bucket_w + 1, 8), rng.randrange(bucket_h - 48, bucket_h + 1, 8)))
    return sizes


def tpu_stats(server) -> dict:
    run = server.run_prompt({"1": {"class_type": "ComfyxTPUCompilationCache", "inputs": {"action": "stats"}}})
    return json.loads(run.history["outputs"]["1"]["text"][0])


def image_size(out: Path, run) -> tuple[int, int]:
    image = run.history["outputs"]["7"]["images"][0]
    return image_format(out / image["subfolder"] / image["filename"])[1]


@pytest.fixture
def tpu_server(comfyx_server, tiny_models, tmp_path):
    def start(*comfyx_args: str):
        out = tmp_path / "out"
        server = comfyx_server(*tiny_models.comfyui_args(), "--output-directory", str(out),
                               comfyx_args=["--backend", "tpu", *comfyx_args],
                               env={"PJRT_DEVICE": "CPU", "COMFYX_CACHE_DIR": str(tmp_path / "cache")})
        return server, out

    return start


def test_mixed_sizes_compile_nothing_after_one_warmup_per_bucket(tpu_server, tmp_path):
    server, out = tpu_server()
    assert "comfyx backend tpu: XLA device" in server.log_tail(200)
    for index, (width, height) in enumerate(BUCKETS):  # warm-up: one request per bucket
        run = server.run_prompt(txt2img(width=width - 8, height=height - 8, seed=index, prefix="warm"))
        assert run.first("execution_error") is None, server.log_tail()
    warm = tpu_stats(server)
    assert warm["active"] and warm["compiles"] > 0

    for index, (width, height) in enumerate(mixed_sizes(20)):
        run = server.run_prompt(txt2img(width=width, height=height, seed=100 + index, prefix="mixed"))
        assert run.first("execution_error") is None, server.log_tail()
        assert image_size(out, run) == (width, height)

    after = tpu_stats(server)
    assert after["compiles"] - warm["compiles"] == 0, json.dumps(after["signatures"], indent=1)
    assert after["hits"] - warm["hits"] == 20 and after["misses"] == warm["misses"]
    shapes = {tuple(s["shape"]) for s in after["signatures"]}
    assert shapes == {(1, 4, h // 8, w // 8) for w, h in BUCKETS}
    assert all(s["model"].startswith("BaseModel:SD15:") for s in after["signatures"])
    cache = after["persistent_cache"]
    assert cache["enabled"] and cache["entries"] > 0  # written; the CPU client cannot read them back


def test_without_padding_every_new_size_compiles(tpu_server):
    server, out = tpu_server("--no-tpu-shape-padding", "--no-tpu-warmup", "--no-tpu-compilation-cache")
    sizes = [(64, 64), (56, 48)]
    compiles = []
    for width, height in sizes:
        before = tpu_stats(server)["compiles"]
        run = server.run_prompt(txt2img(width=width, height=height))
        assert run.first("execution_error") is None, server.log_tail()
        assert image_size(out, run) == (width, height)
        compiles.append(tpu_stats(server)["compiles"] - before)
    assert all(count > 0 for count in compiles), compiles
    assert tpu_stats(server)["persistent_cache"]["enabled"] is False


def test_nodes(tpu_server, tiny_models):
    server, _ = tpu_server("--tpu-manual-warmup", "--tpu-sync-steps", "2", "--tpu-debug-metrics")
    prompt = {
        "1": {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": tiny_models.checkpoint}},
        "2": {"class_type": "ComfyxTPUModelOptimization",
              "inputs": {"model": ["1", 0], "autocast_dtype": "bfloat16", "compile_caching": "off",
                         "shape_padding": "on", "pad_multiple": 128}},
        "3": {"class_type": "ComfyxTPUManualWarmup",
              "inputs": {"model": ["2", 0], "width": 200, "height": 96, "batch_size": 2, "cfg": 5.0}},
        "4": {"class_type": "ComfyxTPUDeviceInfo", "inputs": {}},
        "5": {"class_type": "ComfyxTPUCompilationCache", "inputs": {"action": "info"}},
    }
    run = server.run_prompt(prompt)
    assert run.first("execution_error") is None, server.log_tail()
    outputs = run.history["outputs"]
    status = outputs["3"]["text"][0]
    assert status.startswith("warmed up 200x96 batch 2 cfg 5.0:") and "XLA compilation(s)" in status
    info = json.loads(outputs["4"]["text"][0])
    assert info["active"] and info["device"].startswith("XLA device xla:0 (PJRT CPU")
    assert info["settings"]["manual_warmup"] and info["settings"]["sync_steps"] == 2
    assert json.loads(outputs["5"]["text"][0])["dir"].endswith("xla")

    stats = tpu_stats(server)
    (signature,) = stats["signatures"]
    # the node's overrides: 128-px buckets, bf16 autocast, no automatic warm-up
    assert signature["shape"] == [2, 4, 128 // 8, 256 // 8]
    assert signature["dtype"].endswith("+autocast-bfloat16") and not signature["warmed_up"]
    assert "Metric: CompileTime" in server.log_tail(400)  # --tpu-debug-metrics
    assert "was not warmed up" not in server.log_tail(400)

    run = server.run_prompt(txt2img(width=64, height=64, steps=1))  # a size nobody warmed up
    assert run.first("execution_error") is None, server.log_tail()
    assert "was not warmed up (--tpu-manual-warmup): this run compiles" in server.log_tail(400)

    cleared = server.run_prompt({"1": {"class_type": "ComfyxTPUCompilationCache", "inputs": {"action": "clear"}}})
    assert json.loads(cleared.history["outputs"]["1"]["text"][0])["signatures_cleared"] is True
    assert tpu_stats(server)["signatures"] == []
