"""Terminal progress for ``comfyx run``: a line per node, a bar per node that reports steps."""

from __future__ import annotations

import sys

from tqdm import tqdm


class ProgressRenderer:
    """Turns ComfyUI's executor events into terminal output (stderr)."""

    def __init__(self, workflow: dict):
        self._workflow = workflow
        self._bar: tqdm | None = None
        self._bar_node: str | None = None

    def on_event(self, event: str, data: dict) -> None:
        if event == "execution_cached" and data.get("nodes"):
            self._line(f"cached: {', '.join(map(str, data['nodes']))}")
        elif event == "executing" and data.get("node") is not None:
            self.close()
            node = str(data.get("display_node") or data["node"])
            self._line(f"▶ {node} {self._class_type(node)}")
        elif event == "progress":
            self._progress(str(data.get("node")), int(data["value"]), int(data["max"]))
        elif event == "executed":
            self.close()

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()
            self._bar = None
            self._bar_node = None

    def _progress(self, node: str, value: int, total: int) -> None:
        if self._bar is None or self._bar_node != node or self._bar.total != total:
            self.close()
            self._bar = tqdm(total=total, desc=f"  {node} {self._class_type(node)}", unit="step",
                             file=sys.stderr, leave=True, dynamic_ncols=True)
            self._bar_node = node
        self._bar.update(value - self._bar.n)

    def _class_type(self, node: str) -> str:
        return self._workflow.get(node, {}).get("class_type", "")

    def _line(self, text: str) -> None:
        if self._bar is not None:
            self._bar.write(text, file=sys.stderr)
        else:
            print(text, file=sys.stderr, flush=True)
