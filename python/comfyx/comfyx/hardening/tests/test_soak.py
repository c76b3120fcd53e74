"""A short soak: mixed prompts (valid, malformed, failing, interrupted) and the worker never dies.

``bench/hardening.py`` runs the full 1,000 against `comfyx serve` and stock ComfyUI side by side.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from comfyx.engine.tests.support import start_server
from comfyx.hardening.tests.abuse import SOAK_MIX, soak
from comfyx.testing.workflows import TINY_CHECKPOINT

pytestmark = [pytest.mark.comfyui, pytest.mark.slow]

PROMPTS = 120
RSS_GROWTH_MIB = 150  # after the model is loaded; measured growth is far below


def test_soak(comfyui: Path, tiny_models, tmp_path: Path) -> None:
    server = start_server(comfyui, tmp_path, None, checkpoints=tiny_models.root / "checkpoints")
    try:
        report = soak(server, PROMPTS, txt2img_checkpoint=TINY_CHECKPOINT)
    finally:
        server.stop()
    summary = report.as_dict()
    assert report.worker_died_after is None, summary
    assert summary["accounted_for"] == summary["accepted"] > 0, summary
    assert set(report.outcomes) <= {"success", "error", "interrupted"}, summary
    for answer in report.answers:  # malformed requests are refused, everything else is taken
        kind, status = answer.split(": ")
        refused = kind not in ("valid", "txt2img", "failing", "interrupted", "deleted_running")
        assert status.startswith("400") if refused else status == "200", summary
    assert set(report.requests) <= set(SOAK_MIX)
    assert report.outcomes["interrupted"] >= report.requests["interrupted"], summary
    assert report.rss_end_mib - report.rss_start_mib < RSS_GROWTH_MIB, summary
