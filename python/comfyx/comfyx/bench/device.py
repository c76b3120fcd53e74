"""What a server process uses of the GPU: device memory over time and energy, from NVML.

Stock ComfyUI cannot be asked for its allocator's statistics, so both servers are measured
from outside, the same way: NVML's per-process memory (what the process holds on the device:
its CUDA context and everything its allocator has reserved), sampled every 50 ms, and the
GPU's total-energy counter read before and after each prompt. Where NVML is missing (no
NVIDIA GPU, no ``nvidia-ml-py``) the figures are None and ``reason`` says why.
"""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any

MIB = 1 << 20


def nvml_unavailable_reason() -> str | None:
    """Why this machine gives no GPU figures, or None."""
    try:
        import pynvml

        pynvml.nvmlInit()
        pynvml.nvmlDeviceGetHandleByIndex(0)
    except ImportError:
        return "NVML is not available (pip install nvidia-ml-py)"
    except Exception as err:  # noqa: BLE001 - any NVML failure means: no GPU figures, and why
        return f"NVML: {err}"
    return None


class DeviceMonitor:
    """Samples one process's device memory in a background thread; reads the GPU's energy counter."""

    # 20 ms: an SDXL VAE decode at 1024² takes about 0.1 s on an H100, and its peak is the run's
    def __init__(self, pid: int, device_index: int = 0, interval: float = 0.02):
        self.pid = pid
        self.interval = interval
        self.samples: list[tuple[float, int]] = []  # (monotonic s, bytes)
        self.reason: str | None = None
        self.method = ""
        self._nvml: Any = None
        self._handle: Any = None
        self._baseline = 0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.reason = nvml_unavailable_reason()
        if self.reason is None:
            import pynvml

            self._nvml = pynvml
            self._handle = pynvml.nvmlDeviceGetHandleByIndex(device_index)

    @property
    def available(self) -> bool:
        return self.reason is None

    def start(self) -> None:
        if not self.available:
            return
        # the device's own use before the server touches it, for when NVML cannot see processes
        self._baseline = self._nvml.nvmlDeviceGetMemoryInfo(self._handle).used
        self._thread = threading.Thread(target=self._sample, name="comfyx-bench-nvml", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()

    def _used(self) -> int:
        for process in self._nvml.nvmlDeviceGetComputeRunningProcesses(self._handle):
            if process.pid == self.pid and process.usedGpuMemory is not None:
                self.method = "NVML per-process memory"
                return process.usedGpuMemory
        # NVML in a container may not map pids: the device's use above its use before the start
        self.method = "NVML device memory above the pre-start baseline"
        return max(self._nvml.nvmlDeviceGetMemoryInfo(self._handle).used - self._baseline, 0)

    def _sample(self) -> None:
        while not self._stop.is_set():
            try:
                self.samples.append((time.monotonic(), self._used()))
            except Exception as err:  # noqa: BLE001 - NVML went away: stop sampling, say why
                self.reason = f"NVML: {err}"
                return
            self._stop.wait(self.interval)

    def peak_mib(self, start: float, end: float) -> float | None:
        """The most device memory the process held between two monotonic times."""
        values = [used for t, used in self.samples if start <= t <= end]
        return round(max(values) / MIB, 1) if values else None

    def peaks_mib(self, windows: list[tuple[str, float, float]]) -> dict[str, float]:
        """The most device memory the process held in each named window (name, start, end), where sampled."""
        peaks = {name: self.peak_mib(start, end) for name, start, end in windows}
        return {name: peak for name, peak in peaks.items() if peak is not None}

    def first_at_peak(self, windows: list[tuple[str, float, float]]) -> str | None:
        """The window in which the process first held the most memory it held in any of them: the allocator
        keeps what it reserved, so later windows sit at that level too without having raised it."""
        inside = [(t, used, name) for t, used in self.samples for name, start, end in windows if start <= t <= end]
        if not inside:
            return None
        top = max(used for _, used, _ in inside)
        return min((t, name) for t, used, name in inside if used == top)[1]

    def energy_mj(self) -> int | None:
        """The GPU's total-energy counter (millijoules since the driver loaded), or None."""
        if not self.available:
            return None
        try:
            return self._nvml.nvmlDeviceGetTotalEnergyConsumption(self._handle)
        except Exception:  # noqa: BLE001 - GPUs before Volta have no such counter
            return None


def peak_rss_mib(pid: int) -> float | None:
    """The process's peak resident memory (VmHWM), or None where /proc cannot tell."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return round(int(line.split()[1]) * 1024 / MIB, 1)
    except OSError:
        return None
    return None
