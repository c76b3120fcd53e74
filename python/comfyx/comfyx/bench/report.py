"""The benchmark's report: a table for the terminal, the JSON and a PNG chart."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

COLUMNS = (
    ("config", "config", "{}"),
    ("it_per_s", "it/s", "{:.2f}"),
    ("speedup_it_per_s", "× it/s", "{:.2f}×"),
    ("end_to_end_s", "e2e s", "{:.2f}"),
    ("speedup_end_to_end", "× e2e", "{:.2f}×"),
    ("first_run_s", "first run s", "{:.1f}"),
    ("first_step_s", "first step s", "{:.1f}"),
    ("warm_restart_first_step_s", "warm 1st step s", "{:.1f}"),
    ("peak_vram_mib", "peak VRAM MiB", "{:.0f}"),
    ("sampling_peak_vram_mib", "sampling VRAM MiB", "{:.0f}"),
    ("energy_j_per_image", "J/image", "{:.0f}"),
    ("psnr_db", "PSNR dB", "{:.1f}"),
)


def _cell(value: Any, fmt: str) -> str:
    return "n/a" if value is None else fmt.format(value)


def table(report: dict) -> str:
    """The summary as a text table (n/a where this machine gives no figure)."""
    rows = [[label for _, label, _ in COLUMNS]]
    for name, summary in report["summary"].items():
        values = {"config": name, **summary}
        row = [_cell(values.get(key), fmt) for key, _, fmt in COLUMNS]
        if summary.get("identical_pixels"):
            row[-1] = "identical bytes" if summary.get("identical_bytes") else "identical pixels"
        rows.append(row)
    widths = [max(len(row[i]) for row in rows) for i in range(len(COLUMNS))]
    lines = ["  ".join(cell.rjust(width) for cell, width in zip(row, widths, strict=True)) for row in rows]
    notes = [f"reference: {report['reference']}; GPU figures: {report['gpu_figures']}"]
    for config in report["configs"]:
        if config["error"]:
            notes.append(f"{config['config']['name']}: {config['error'].splitlines()[0]}")
    return "\n".join([*lines, *notes])


def chart(report: dict, path: Path) -> str | None:
    """A PNG with it/s, end-to-end time and peak VRAM per configuration; returns why not, if not."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return "matplotlib is not installed"
    names = list(report["summary"])
    panels = [("it_per_s", "sampling it/s"), ("end_to_end_s", "end to end (s)"), ("peak_vram_mib", "peak VRAM (MiB)")]
    figure, axes = plt.subplots(1, len(panels), figsize=(4.5 * len(panels), 3.8))
    for axis, (key, title) in zip(axes, panels, strict=True):
        values = [report["summary"][n].get(key) or 0 for n in names]
        bars = axis.bar(names, values, color=["#888888" if n.startswith("stock") else "#2a7ab8" for n in names])
        axis.bar_label(bars, fmt="%.3g", fontsize=8)
        axis.set_title(title)
        axis.tick_params(axis="x", labelrotation=20, labelsize=8)
    env = report["environment"]
    arch = report["arch"] or "workflow"
    figure.suptitle(f"comfyx bench: {arch} {report['workflow']} on {env.get('device')} ({env.get('torch')})",
                    fontsize=10)
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)
    return None


def write(report: dict, out: Path, stem: str) -> list[Path]:
    """``out/STEM.json`` and ``out/STEM.png``; returns the files written."""
    out.mkdir(parents=True, exist_ok=True)
    json_path = out / f"{stem}.json"
    png = out / f"{stem}.png"
    why = chart(report, png)
    if why is not None:
        report["chart"] = f"not drawn: {why}"
    json_path.write_text(json.dumps(report, indent=2, default=str) + "\n")
    return [json_path] + ([png] if why is None else [])
