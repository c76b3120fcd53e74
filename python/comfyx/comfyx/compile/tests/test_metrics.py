"""Metrics bookkeeping (no ComfyUI; dynamo only with its eager backend, which compiles nothing)."""

from __future__ import annotations

import logging

import torch

from comfyx.compile.metrics import (
    CompileMetrics,
    aot_cache_bypass_reasons,
    compile_records_since,
    compile_seconds,
    newest_compile_record,
    recompile_reasons_since,
)


def test_aot_cache_bypass_reasons_are_collected_and_the_logger_restored():
    logger = logging.getLogger("torch._functorch._aot_autograd.autograd_cache")
    level = logger.level
    reasons: list[str] = []
    with aot_cache_bypass_reasons(reasons):
        logger.info("Bypassing autograd cache due to: %s", "Unsupported call_function target foo")
        logger.info("AOTAutograd cache hit")
    logger.info("Bypassing autograd cache due to: %s", "after the block")
    assert reasons == ["Unsupported call_function target foo"]
    assert logger.level == level and not logger.handlers


def test_steady_state_is_reported_per_shape_at_the_first_compiled_shape():
    metrics = CompileMetrics("m")
    metrics.compiling_steps.append(("2x4x8x8", 3.0, 1))
    for seconds in (0.010, 0.030, 0.020):
        metrics.record_steady("2x4x8x8", None, seconds)
    metrics.record_steady("2x4x8x12", None, 0.5)
    summary = metrics.summary()
    assert summary["steady_step_ms"] == 20.0
    assert summary["steady_step_ms_by_shape"] == {"2x4x8x8": 20.0, "2x4x8x12": 500.0}
    assert summary["steady_steps"] == 4 and summary["recompiles"] == 0


def test_recompile_reasons_name_the_failed_guard_of_each_recompile():
    torch._dynamo.reset()
    torch._dynamo.utils.clear_compilation_metrics()
    double = torch.compile(lambda t: t * 2, backend="eager", dynamic=False)
    double(torch.ones(3))  # a first compile: no recompilation
    assert recompile_reasons_since(None) == []
    mark = newest_compile_record()
    double(torch.ones(3))  # the same shape: no compile
    assert recompile_reasons_since(mark) == []
    double(torch.ones(5))
    (reason,) = recompile_reasons_since(mark)
    assert "size mismatch at index 0" in reason and "expected 3, actual 5" in reason, reason
    metrics = CompileMetrics("m")
    metrics.add_recompile_reasons([reason] * 20)
    summary = metrics.summary()
    assert summary["recompiles"] == 20 and summary["recompile_reasons"] == [reason] * 16  # the first few kept
    assert "recompiles 20," in metrics.text() and metrics.text().endswith(f"first recompile: {reason}")


def test_compile_seconds_add_up_dynamos_per_frame_times():
    torch._dynamo.reset()
    torch._dynamo.utils.clear_compilation_metrics()
    mark = newest_compile_record()
    double = torch.compile(lambda t: t * 2, backend="aot_eager", dynamic=False)
    double(torch.ones(3))
    double(torch.ones(5))  # a second frame compile
    records = compile_records_since(mark)
    phases = compile_seconds(records)
    assert len(records) == 2
    assert phases["compiling"] == sum(r.dynamo_cumulative_compile_time_us for r in records) / 1e6 > 0
    assert 0 < phases["aot_autograd"] <= phases["compiling"]  # a part of the whole
    assert compile_seconds(compile_records_since(records[-1])) == dict.fromkeys(phases, 0.0)  # nothing since
