"""The CPU's instruction sets as the kernel reports them, to explain oneDNN's answers."""

from __future__ import annotations

from pathlib import Path


def cpu_flags(cpuinfo: Path = Path("/proc/cpuinfo")) -> set[str]:
    """The CPU's feature flags as the kernel reports them (empty where unknown)."""
    try:
        text = cpuinfo.read_text()
    except OSError:
        return set()
    for line in text.splitlines():
        if line.startswith("flags"):
            return set(line.split(":", 1)[1].split())
    return set()


def describe_isa(flags: set[str], max_isa: str | None) -> str:
    """``CPU flags: avx, avx2, ..., limited by ONEDNN_MAX_CPU_ISA=...``: the vector ISA oneDNN may use."""
    have = ", ".join(sorted(f for f in flags if f.startswith(("avx", "amx")))) or "no AVX flags"
    limit = f", limited by ONEDNN_MAX_CPU_ISA={max_isa}" if max_isa else ""
    return f"CPU flags: {have}{limit}"
