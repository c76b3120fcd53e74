"""Where a restarted server's first run spends its time: the warm restart sampled with py-spy.

py-spy runs the server as its child (no ptrace rights needed beyond a parent's), samples every
thread's Python stack and, when stopped with SIGINT, writes them as collapsed stacks (one line per
distinct stack, ``frame;frame;... count``: flamegraph.pl's input) and ends the server. Frames are
aggregated per function (``--function``), so a function's share is every sample it is on the stack
of, whatever line it was at. Waiting threads are sampled too (``--idle``: a warm restart's first
step may wait on the GPU, on files, on inductor's compile workers); the prompt worker's wait for a
prompt (``PromptQueue.get``) is left out of the summary. Without stopping the server
(``--nonblocking``) some reads fail while its stacks change under them: py-spy counts them at the
end of its output (the server's log), and the summary says how much time they leave unplaced (SDXL's
warm restart on an H100: 1598 of 5711 reads, about 16 s of a 34 s step).
"""

from __future__ import annotations

import re
import shutil
import sys
from collections import Counter
from pathlib import Path

WORKER_FRAME = "prompt_worker"  # ComfyUI's main.py thread that executes prompts
WAITING_FOR_WORK = "PromptQueue.get"  # the worker between prompts


def py_spy() -> str | None:
    """py-spy's executable: beside this Python's (its environment's, pip install py-spy), else on PATH."""
    beside = Path(sys.executable).with_name("py-spy")
    return str(beside) if beside.exists() else shutil.which("py-spy")


def wrapper(executable: str, output: Path, rate: int = 100) -> list[str]:
    """The command prefix that runs a server under py-spy, its stacks written to ``output``."""
    return [executable, "record", "--nonblocking", "--idle", "--function", "--rate", str(rate), "--format", "raw",
            "--output", str(output), "--"]


def inclusive_samples(collapsed: str, under: str = WORKER_FRAME) -> tuple[int, Counter[str], Counter[str]]:
    """Samples of the stacks that pass through a frame named ``under`` (its function name) and not through
    WAITING_FOR_WORK; per function below it, how many of them it was on (each function counted once per
    stack) and how many it was the innermost frame of (its own time)."""
    total, inclusive, own = 0, Counter(), Counter()
    for line in collapsed.splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        frames = stack.split(";")
        names = [frame.split(" (", 1)[0] for frame in frames]
        if under not in names or WAITING_FOR_WORK in names:
            continue
        below = frames[names.index(under):]
        total += int(count)
        for frame in dict.fromkeys(below):
            inclusive[frame] += int(count)
        own[below[-1]] += int(count)
    return total, inclusive, own


def failed_reads(py_spy_output: str) -> tuple[int, int] | None:
    """(samples read, reads failed) from py-spy's last words (``Samples: 4113 Errors: 1598``), or None."""
    found = re.findall(r"Samples: (\d+) Errors: (\d+)", py_spy_output)
    return (int(found[-1][0]), int(found[-1][1])) if found else None


def summary(collapsed: str, rate: int = 100, top: int = 150, under: str = WORKER_FRAME,
            reads: tuple[int, int] | None = None) -> str:
    """The functions that held ``under``'s thread longest, with their share of its samples and seconds:
    the time each was on the stack, then the time each was the innermost frame. ``reads``: py-spy's
    (samples, failed reads) of the whole run (:func:`failed_reads`), said first where reads failed."""
    total, inclusive, own = inclusive_samples(collapsed, under)
    lines = []
    if reads is not None and reads[1]:
        read, failed = reads
        lines.append(f"py-spy failed {failed} of its {read + failed} reads of the server ({failed / rate:.1f} s at "
                     f"{rate} Hz, not placed below: the seconds below are a lower bound)")
    if total == 0:
        return "\n".join([*lines, f"no samples in a thread running {under}"]) + "\n"
    lines.append(f"{total} samples ({total / rate:.1f} s) in the thread running {under}; share, seconds, function")

    def table(title: str, counts: Counter[str], rows: int) -> None:
        lines.append(title)
        lines.extend(f"{100 * n / total:5.1f}%  {n / rate:7.2f} s  {frame}" for frame, n in counts.most_common(rows))

    table("# on the stack (inclusive)", inclusive, top)
    table("# innermost (own time)", own, top // 3)
    return "\n".join(lines) + "\n"
