"""The scheduling core, without ComfyUI: BMF worker pool, concurrency policy, cache keys."""

from __future__ import annotations

import asyncio
import random
import signal
import subprocess
import sys
import threading

import pytest

from comfyx.engine.core.keys import ContentKey, KeyTable
from comfyx.engine.core.policy import (
    CpuBoundTracker,
    Lane,
    Limiter,
    lanes_for,
    may_run_on_a_worker,
    node_types,
    worth_offloading,
)
from comfyx.engine.core.pool import WorkerPool, bmf_unavailable_reason
from comfyx.engine.core.ready import ReadyIndex

needs_bmf = pytest.mark.skipif(bmf_unavailable_reason() is not None, reason=str(bmf_unavailable_reason()))


@pytest.fixture(scope="module")
def pool():
    pool = WorkerPool(4)
    yield pool
    pool.close()


@needs_bmf
def test_pool_runs_blocking_jobs_concurrently(pool: WorkerPool) -> None:
    # Each job waits for all four to arrive: run one after another, the first would time out.
    barrier = threading.Barrier(4, timeout=20)
    futures = [pool.submit(barrier.wait) for _ in range(4)]
    assert sorted(future.result(timeout=30) for future in futures) == [0, 1, 2, 3]


@needs_bmf
def test_pool_runs_jobs_on_bmf_threads_and_passes_objects_by_reference(pool: WorkerPool) -> None:
    payload = bytearray(b"x" * 1024)
    seen = pool.submit(lambda obj: (obj, threading.get_ident()), payload).result(timeout=10)
    assert seen[0] is payload
    assert seen[1] != threading.get_ident()


@needs_bmf
def test_pool_hands_back_exceptions(pool: WorkerPool) -> None:
    with pytest.raises(ValueError, match="invalid literal"):
        pool.submit(int, "not a number").result(timeout=10)
    assert pool.submit(int, "7").result(timeout=10) == 7  # the worker survived


@needs_bmf
def test_closed_pool_refuses_jobs() -> None:
    pool = WorkerPool(1)
    pool.close()
    with pytest.raises(RuntimeError, match="closed"):
        pool.submit(int, "1")


@needs_bmf
def test_pool_start_writes_nothing_to_stdout() -> None:
    # BMF's C++ logger prints to stdout when a graph starts; `comfyx run` prints its files there.
    code = "from comfyx.engine.core.pool import WorkerPool; pool = WorkerPool(2); pool.submit(int, '1').result(); " \
           "pool.close(); print('only this')"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True)
    assert result.stdout == "only this\n"
    assert "JobRunner" in result.stderr  # BMF's lines went to stderr instead


SIGNALS_AFTER_A_POOL_STARTS = """
import os, signal, threading, time
from comfyx.engine.core.pool import WorkerPool
pools = []
worker = threading.Thread(target=lambda: pools.append(WorkerPool(2)))  # ComfyUI starts it off the main thread
worker.start()
worker.join()
assert pools[0].submit(int, "3").result(timeout=30) == 3
try:
    os.kill(os.getpid(), signal.SIGINT)
    time.sleep(5)
except KeyboardInterrupt:
    print("interrupted", flush=True)
os.kill(os.getpid(), signal.SIGTERM)
time.sleep(5)
print("survived SIGTERM")
"""


@needs_bmf
def test_ctrl_c_and_sigterm_still_work_once_a_pool_started() -> None:
    # BMF installs SIGINT/SIGTERM handlers of its own that leave the process running.
    result = subprocess.run([sys.executable, "-c", SIGNALS_AFTER_A_POOL_STARTS], capture_output=True, text=True,
                            timeout=120, check=False)
    assert result.stdout == "interrupted\n", result.stderr
    assert result.returncode == -signal.SIGTERM


def test_pool_rejects_zero_workers() -> None:
    with pytest.raises(ValueError):
        WorkerPool(0)


class CheckpointLoader:
    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"ckpt_name": (["a.safetensors"],)}}

    RETURN_TYPES = ("MODEL", "CLIP", "VAE")
    FUNCTION = "load"


class SaveText:
    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"text": ("STRING", {"multiline": True})}, "optional": {"image": ("IMAGE",)}}

    RETURN_TYPES = ()
    FUNCTION = "save"
    OUTPUT_NODE = True


class Downloader:
    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"url": ("STRING",)}}

    RETURN_TYPES = ("STRING",)
    FUNCTION = "fetch"


def test_lanes_follow_declared_types() -> None:
    assert node_types(CheckpointLoader) == {"MODEL", "CLIP", "VAE"}
    assert lanes_for(CheckpointLoader) == {Lane.DEVICE}
    assert node_types(SaveText) == {"STRING", "IMAGE"}
    assert lanes_for(SaveText) == {Lane.OUTPUT}
    assert lanes_for(Downloader) == set()


@pytest.mark.parametrize(("lanes", "expected"), [({Lane.DEVICE}, 1), ({Lane.OUTPUT, Lane.DEVICE}, 1), (set(), 3)])
def test_limiter_caps_concurrency_per_lane(lanes: set[Lane], expected: int) -> None:
    async def main() -> int:
        limiter = Limiter(workers=3)
        running = peak = 0

        async def job() -> None:
            nonlocal running, peak
            async with limiter.slot(lanes):
                running += 1
                peak = max(peak, running)
                await asyncio.sleep(0.01)
                running -= 1

        await asyncio.gather(*(job() for _ in range(6)))
        return peak

    assert asyncio.run(main()) == expected


@pytest.mark.parametrize(("in_flight", "ready", "external_blocks", "offload"), [
    (0, 1, 0, False),  # alone in the frontier, nothing pending: inline, as ComfyUI runs it
    (0, 2, 0, True),
    (1, 1, 0, True),
    # Jobs done on workers whose results the executor has not taken yet: their successors are about
    # to be ready, so a node run inline now could block the loop they need (a barrier across branches).
    (0, 1, 3, True),
])
def test_offloading_when_anything_else_may_run(in_flight: int, ready: int, external_blocks: int,
                                               offload: bool) -> None:
    assert worth_offloading(in_flight, ready, external_blocks) is offload


@pytest.mark.parametrize(("lanes", "device_is_cpu", "allowed"), [
    (frozenset({Lane.DEVICE}), True, False),  # torch's CPU work stays on one thread: one OpenMP team
    (frozenset({Lane.DEVICE, Lane.OUTPUT}), True, False),
    (frozenset({Lane.DEVICE}), False, True),  # an accelerator's nodes may overlap with the rest
    (frozenset({Lane.OUTPUT}), True, True),
    (frozenset(), True, True),  # downloads, API calls: still on workers
])
def test_device_lane_nodes_stay_on_the_prompt_thread_where_the_device_is_the_cpu(
        lanes: frozenset, device_is_cpu: bool, allowed: bool) -> None:
    assert may_run_on_a_worker(lanes, device_is_cpu) is allowed


def test_cpu_bound_node_classes_get_the_cpu_lane() -> None:
    tracker = CpuBoundTracker()
    assert tracker.lanes(SaveText) == set()  # not seen yet: runs in parallel
    tracker.record(SaveText, cpu_seconds=0.9, wall_seconds=1.0)
    tracker.record(Downloader, cpu_seconds=0.01, wall_seconds=1.0)
    assert tracker.lanes(SaveText) == {Lane.CPU}
    assert tracker.lanes(Downloader) == set()
    tracker.record(SaveText, cpu_seconds=0.001, wall_seconds=0.001)  # too short to matter
    assert tracker.lanes(SaveText) == set()
    tracker.record(SaveText, cpu_seconds=0.2, wall_seconds=0.8, running=4)  # its share of the GIL, all used
    assert tracker.lanes(SaveText) == {Lane.CPU}


def _hashable(value: object) -> object:
    return tuple(value) if isinstance(value, list) else value


def _table(prompt: dict) -> KeyTable:
    async def immediate(node_id: str, node: dict) -> tuple:
        return (node["class_type"],)

    return KeyTable(prompt.get, immediate, _hashable)


def _chain(n: int, value: int = 1) -> dict:
    prompt = {"0": {"class_type": "Const", "inputs": {"value": value}}}
    for i in range(1, n):
        prompt[str(i)] = {"class_type": "Add", "inputs": {"a": [str(i - 1), 0], "b": 1}}
    return prompt


def test_equal_graphs_get_the_same_key_object() -> None:
    first = asyncio.run(_table(_chain(50)).key("49"))
    second = asyncio.run(_table(_chain(50)).key("49"))
    assert isinstance(first, ContentKey)
    assert first is second


def test_a_changed_ancestor_changes_the_key() -> None:
    assert asyncio.run(_table(_chain(50, value=1)).key("49")) != asyncio.run(_table(_chain(50, value=2)).key("49"))
    renamed = {f"n{k}": {**v, "inputs": {**v["inputs"]}} for k, v in _chain(3).items()}
    for node in renamed.values():
        for name, value in node["inputs"].items():
            if isinstance(value, list):
                node["inputs"][name] = [f"n{value[0]}", value[1]]
    assert asyncio.run(_table(renamed).key("n2")) == asyncio.run(_table(_chain(3)).key("2"))


def test_missing_nodes_and_cycles_never_match() -> None:
    prompt = {"a": {"class_type": "X", "inputs": {"x": ["b", 0]}}, "b": {"class_type": "X", "inputs": {"x": ["a", 0]}},
              "c": {"class_type": "X", "inputs": {"x": ["gone", 0]}}}
    table = _table(prompt)
    assert asyncio.run(table.key("a")) != asyncio.run(_table(prompt).key("a"))
    assert asyncio.run(table.key("c")) != asyncio.run(_table(prompt).key("c"))


def test_keying_is_linear_in_graph_size() -> None:
    # Work is counted, not timed (a timed test fails on a loaded machine): stock's keys
    # walk every ancestor, which on a chain is quadratic in its length.
    def lookups(n: int) -> int:
        prompt = _chain(n)
        calls = 0

        def get_node(node_id: str) -> dict | None:
            nonlocal calls
            calls += 1
            return prompt.get(node_id)

        async def immediate(node_id: str, node: dict) -> tuple:
            nonlocal calls
            calls += 1
            return (node["class_type"],)

        asyncio.run(KeyTable(get_node, immediate, _hashable).key(str(n - 1)))
        return calls

    small, large = lookups(2000), lookups(8000)
    assert small >= 2000  # every node was reached
    assert large <= 4 * small + 10  # quadratic would be 16 times


def test_ready_index_matches_comfyuis_scan_through_random_changes() -> None:
    # The same mutations ComfyUI's TopologicalSort makes: join pending (block count reset to 0),
    # links and external blocks (+1 / -1), pop (leave pending, count kept), rejoin later.
    rng = random.Random(7)
    index = ReadyIndex()
    pending, counts = index.pending, index.block_count
    for _ in range(5000):
        node = f"n{rng.randrange(40)}"
        action = rng.random()
        if node not in pending and action < 0.5:
            pending[node] = True
            counts[node] = 0
        elif node in pending and action < 0.7:
            counts[node] += 1
        elif node in pending and counts[node] > 0 and action < 0.9:
            counts[node] -= 1
        elif node in pending:
            del pending[node]
        assert index.ready() == [n for n in pending if counts[n] == 0]


def test_ready_index_lists_a_rejoined_node_last() -> None:
    index = ReadyIndex()
    for node in ("a", "b"):
        index.pending[node] = True
        index.block_count[node] = 0
    del index.pending["a"]
    index.pending["a"] = True
    assert index.ready() == ["b", "a"] == list(index.pending)


def test_every_mutator_of_the_two_maps_keeps_the_ready_index_current() -> None:
    # ComfyUI only assigns and deletes keys; dict's other mutators must not bypass the index either.
    rng = random.Random(11)
    index = ReadyIndex()
    pending, counts = index.pending, index.block_count
    mutators = [
        lambda n: pending.update({n: True}, **{f"k{rng.randrange(5)}": True}),
        lambda n: pending.setdefault(n, True),
        lambda n: pending.pop(n, None),
        lambda n: pending.popitem() if pending else None,
        lambda n: pending.__ior__({n: True}),
        lambda n: counts.update({n: rng.randrange(3)}),
        lambda n: counts.setdefault(n, 0),
        lambda n: counts.pop(n, None),
        lambda n: counts.popitem() if counts else None,
        lambda n: counts.__ior__({n: 0}),
        lambda n: pending.clear() if rng.random() < 0.02 else None,
        lambda n: counts.clear() if rng.random() < 0.02 else None,
    ]
    for _ in range(5000):
        rng.choice(mutators)(f"n{rng.randrange(20)}")
        assert index.ready() == [n for n in pending if counts.get(n) == 0]
    with pytest.raises(KeyError):
        ReadyIndex().pending.pop("absent")
