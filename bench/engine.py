"""The BMF engine against stock ComfyUI, side by side on real ComfyUI v0.3.64.

Two ``comfyx serve`` servers run at once, ``--engine stock`` and ``--engine bmf`` (same
flags, ``--cpu``, default cache), and every measurement alternates between them, so
machine noise hits both alike. Figures are medians.

What "end to end" means here, for both engines: the client (websocket-client, with the
websocket already open, as a browser tab has it) posts the prompt; the time runs from just
before ``POST /prompt`` until the prompt's ``executing``/``node: null`` event (the executor
is idle again) has arrived and ``GET /history/{id}`` has returned it. It includes
ComfyUI's validation, the queue, the executor, every websocket message the server sends
for the prompt, and the periodic ``gc.collect()`` ComfyUI's prompt worker runs after a
prompt. The client decodes every message with ``json.loads``; websocket-client's
pure-Python UTF-8 check (0.5 µs a byte, 16 s for stock's 32 MB at N = 400) is skipped,
as ``json.loads`` checks the text anyway.

- ``chain``: EmptyImage 8x8 -> N x ImageInvert -> PreviewImage, N = 50..400, measured in
  ``--chain-rounds`` separate rounds (each reported, and the medians over all of them);
  ``executor`` is from ``execution_start`` to ``execution_success`` (the executor's own
  timestamps), ``end_to_end`` as above.
- ``branches``: 4 independent branches, each EmptyImage -> 2 x ComfyxBlockingSleep(0.5 s,
  ``time.sleep``: blocks without holding the GIL, like API / download / file-writing
  nodes) -> PreviewImage; and the same shape with CPU-bound pure-Python nodes
  (ComfyxBusyLoop, holds the GIL). End to end.
- ``switch``: two workflows with two different tiny SD1.5-architecture checkpoints,
  alternated A B A B A B; the checkpoint loader's time per prompt (from its ``executing``
  event to the first node using its outputs starting; 0 when it was served from cache).
- ``txt2img``: the tiny checkpoint's txt2img on both servers: saved PNG bytes compared, and
  end-to-end time per prompt (different seeds each run, same on both servers; median of
  ``--txt2img-repeats``).

    COMFYUI_PATH=/work/comfyui python bench/engine.py            # writes bench/results/engine.{json,png}
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.parse
import urllib.request
from pathlib import Path

from comfyx.engine.tests.support import run, start_server
from comfyx.testing.server import ComfyxServer, PromptRun
from comfyx.testing.workflows import txt2img

RESULTS = Path(__file__).resolve().parent / "results"
ENGINES = ("stock", "bmf")
CHAIN_TARGET_SECONDS = 0.4  # issue 7: N = 400 end to end


def chain_prompt(n: int, variant: int) -> dict:
    prompt = {"0": {"class_type": "EmptyImage",
                    "inputs": {"width": 8, "height": 8, "batch_size": 1, "color": variant}}}
    for i in range(1, n + 1):
        prompt[str(i)] = {"class_type": "ImageInvert", "inputs": {"image": [str(i - 1), 0]}}
    prompt["out"] = {"class_type": "PreviewImage", "inputs": {"images": [str(n), 0]}}
    return prompt


def branches_prompt(node: str, variant: int, **inputs: object) -> dict:
    prompt = {}
    for b in range(4):
        prompt[f"{b}.image"] = {"class_type": "EmptyImage",
                                "inputs": {"width": 8, "height": 8, "batch_size": 1, "color": variant * 4 + b}}
        prompt[f"{b}.a"] = {"class_type": node, "inputs": {"image": [f"{b}.image", 0], **inputs}}
        prompt[f"{b}.b"] = {"class_type": node, "inputs": {"image": [f"{b}.a", 0], **inputs}}
        prompt[f"{b}.out"] = {"class_type": "PreviewImage", "inputs": {"images": [f"{b}.b", 0]}}
    return prompt


def executor_seconds(result: PromptRun) -> float:
    messages = {kind: data for kind, data in result.history["status"]["messages"]}
    if "execution_success" not in messages:
        raise RuntimeError(f"prompt failed: {result.history['status']}")
    return (messages["execution_success"]["timestamp"] - messages["execution_start"]["timestamp"]) / 1000


def bench_chain(servers: dict[str, ComfyxServer], sizes: list[int], repeats: int, rounds: int) -> dict:
    """Medians over all rounds per engine and N, and each round's own medians (``rounds``)."""
    samples = {engine: {n: {"executor": [], "end_to_end": []} for n in sizes} for engine in ENGINES}
    per_round = []
    variant = 0
    for index in range(rounds):
        this_round = {engine: {n: {"executor": [], "end_to_end": []} for n in sizes} for engine in ENGINES}
        for n in sizes:
            for _ in range(repeats):
                variant += 1
                for engine in ENGINES:
                    result = run(servers[engine], chain_prompt(n, variant))
                    for kind, value in (("executor", executor_seconds(result)), ("end_to_end", result.end_to_end)):
                        this_round[engine][n][kind].append(value)
                        samples[engine][n][kind].append(value)
            for engine in ENGINES:
                print(f"chain round {index + 1} N={n} {engine}: {_medians(this_round[engine][n])}", flush=True)
        per_round.append({engine: {n: _medians(v) for n, v in this_round[engine].items()} for engine in ENGINES})
    results = {engine: {n: _medians(v) for n, v in samples[engine].items()} for engine in ENGINES}
    results["rounds"] = per_round
    return results


def _medians(samples: dict[str, list[float]]) -> dict[str, float]:
    return {kind: statistics.median(values) for kind, values in samples.items()}


def bench_branches(servers: dict[str, ComfyxServer], repeats: int) -> dict:
    shapes = {"blocking": ("ComfyxBlockingSleep", {"seconds": 0.5}),
              "cpu_bound": ("ComfyxBusyLoop", {"iterations": 3_000_000})}
    results = {}
    variant = 0
    for shape, (node, inputs) in shapes.items():
        samples = {engine: [] for engine in ENGINES}
        for _ in range(repeats):
            variant += 1
            for engine in ENGINES:
                samples[engine].append(run(servers[engine], branches_prompt(node, variant, **inputs)).end_to_end)
        results[shape] = {engine: statistics.median(v) for engine, v in samples.items()}
        results[shape]["speedup"] = results[shape]["stock"] / results[shape]["bmf"]
        print(f"branches {shape}: {results[shape]}", flush=True)
    return results


def loader_seconds(result: PromptRun, prompt: dict, loader: str) -> float:
    """From the loader's ``executing`` event to the first node that uses its outputs starting (0 when cached).

    A node that reads the loader's outputs can only start once they exist, on either engine.
    """
    users = {node_id for node_id, node in prompt.items()
             if any(isinstance(v, list) and v[:1] == [loader] for v in node["inputs"].values())}
    started = None
    for (kind, data), t in zip(result.events, result.times, strict=True):
        if kind != "executing":
            continue
        if data.get("node") == loader:
            started = t
        elif started is not None and data.get("node") in users:
            return t - started
    return 0.0


def bench_switch(servers: dict[str, ComfyxServer], checkpoints: list[str], rounds: int) -> dict:
    results = {engine: [] for engine in ENGINES}
    for i in range(rounds * 2):
        checkpoint = checkpoints[i % 2]
        prompt = txt2img(checkpoint, seed=i, steps=1, width=64, height=64, prefix=f"switch{i}")
        for engine in ENGINES:
            result = run(servers[engine], prompt)
            results[engine].append(loader_seconds(result, prompt, "1"))
    summary = {}
    for engine, loads in results.items():
        first = statistics.mean(loads[:2])
        later = statistics.median(loads[2:])
        summary[engine] = {"loads": loads, "first_load": first, "later_switches": later,
                           "later_over_first": later / first if first else None}
        print(f"switch {engine}: {summary[engine]}", flush=True)
    return summary


def fetch_image(server: ComfyxServer, result: PromptRun) -> bytes:
    images = [i for node in result.history["outputs"].values() for i in node.get("images", [])]
    query = urllib.parse.urlencode({k: images[0][k] for k in ("filename", "subfolder", "type")})
    with urllib.request.urlopen(f"{server.url}/view?{query}", timeout=30) as response:
        return response.read()


def bench_txt2img(servers: dict[str, ComfyxServer], checkpoint: str, repeats: int) -> dict:
    identical = True
    samples = {engine: [] for engine in ENGINES}
    for seed in range(repeats + 1):
        prompt = txt2img(checkpoint, seed=100 + seed, steps=4, width=64, height=64, prefix=f"txt2img{seed}")
        images = {}
        for engine in ENGINES:
            result = run(servers[engine], prompt)
            if seed:  # the first run loads the checkpoint
                samples[engine].append(result.end_to_end)
            images[engine] = fetch_image(servers[engine], result)
        identical &= images["stock"] == images["bmf"]
    summary = {engine: statistics.median(v) for engine, v in samples.items()}
    summary["identical_png_bytes"] = identical
    summary["overhead"] = summary["bmf"] / summary["stock"] - 1
    print(f"txt2img: {summary}", flush=True)
    return summary


def make_checkpoints(comfyui: Path, directory: Path) -> list[str]:
    names = []
    for seed in (0, 1):
        name = f"comfyx_bench_tiny_{seed}.safetensors"
        if not (directory / name).exists():
            subprocess.run([sys.executable, "-m", "comfyx.testing.checkpoint", "--comfyui", str(comfyui),
                            "--seed", str(seed), str(directory / name)], check=True, capture_output=True)
        names.append(name)
    return names


def plot(data: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 3, figsize=(15, 4.5))
    chain = data["chain"]
    for engine in ENGINES:
        points = {int(n): v for n, v in chain[engine].items()}  # JSON keys are strings
        sizes = sorted(points)
        axes[0].plot(sizes, [points[n]["end_to_end"] for n in sizes], "o-", label=f"{engine} end to end")
        axes[0].plot(sizes, [points[n]["executor"] for n in sizes], "x--", label=f"{engine} executor")
    axes[0].axhline(CHAIN_TARGET_SECONDS, color="grey", linestyle=":", label=f"N=400 target {CHAIN_TARGET_SECONDS} s")
    axes[0].set(title="Chain of N trivial nodes", xlabel="N", ylabel="seconds (median, log scale)", yscale="log")
    axes[0].legend()
    shapes = list(data["branches"])
    for offset, engine in enumerate(ENGINES):
        axes[1].bar([i + offset * 0.4 for i in range(len(shapes))], [data["branches"][s][engine] for s in shapes],
                    0.4, label=engine)
    axes[1].set_xticks([i + 0.2 for i in range(len(shapes))], shapes)
    axes[1].set(title="4 branches x 2 nodes (0.5 s each when blocking)", ylabel="seconds (median)")
    axes[1].legend()
    for engine in ENGINES:
        axes[2].plot(range(1, len(data["switch"][engine]["loads"]) + 1), data["switch"][engine]["loads"], "o-",
                     label=engine)
    axes[2].set(title="Alternating two checkpoints: loader time", xlabel="prompt (A B A B ...)", ylabel="seconds")
    axes[2].legend()
    fig.suptitle(f"comfyx BMF engine vs stock ComfyUI 0.3.64 ({data['machine']})")
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--comfyui", type=Path, default=os.environ.get("COMFYUI_PATH"))
    parser.add_argument("--sizes", default="50,100,200,400")
    parser.add_argument("--repeats", type=int, default=3)
    # A short prompt's time on a 2-CPU machine varies by 10-30% from run to run: 3 samples could
    # not tell the engine's overhead (0 to 11%) from noise.
    parser.add_argument("--txt2img-repeats", type=int, default=15)
    parser.add_argument("--chain-rounds", type=int, default=2, help="separate rounds of the chain measurement")
    parser.add_argument("--out", type=Path, default=RESULTS / "engine")
    parser.add_argument("--plot-only", action="store_true", help="redraw the PNG from an existing JSON")
    args = parser.parse_args()
    if args.plot_only:
        plot(json.loads(args.out.with_suffix(".json").read_text()), args.out.with_suffix(".png"))
        return 0
    if args.comfyui is None:
        parser.error("--comfyui or COMFYUI_PATH is required")
    work = Path(tempfile.mkdtemp(prefix="comfyx-bench-engine-"))
    (work / "checkpoints").mkdir()
    checkpoints = make_checkpoints(args.comfyui, work / "checkpoints")
    servers = {}
    try:
        for engine in ENGINES:
            servers[engine] = start_server(args.comfyui, work / engine, engine, checkpoints=work / "checkpoints")
        data = {
            "machine": f"{platform.machine()}, {os.cpu_count()} CPUs, Python {platform.python_version()}",
            "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
            "end_to_end": "from just before POST /prompt (websocket open) until the prompt's executing/null event "
                          "has arrived and GET /history/{id} has returned it",
            "chain": bench_chain(servers, [int(n) for n in args.sizes.split(",")], args.repeats, args.chain_rounds),
            "branches": bench_branches(servers, args.repeats),
            "switch": bench_switch(servers, checkpoints, rounds=3),
            "txt2img": bench_txt2img(servers, checkpoints[0], args.txt2img_repeats),
        }
    finally:
        for server in servers.values():
            server.stop()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.with_suffix(".json").write_text(json.dumps(data, indent=2) + "\n")
    plot(data, args.out.with_suffix(".png"))
    print(f"wrote {args.out.with_suffix('.json')} and {args.out.with_suffix('.png')}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
