"""Saved Dynamo traces (comfyx.compile.traces): what a saved trace is used for, and what makes comfyx trace again.

Real torch.compile / aot_compile on small modules (AOTAutograd's eager backend, which saves like inductor's
and compiles in about a second); the ComfyUI restart with inductor is in test_comfyui_compile.py.
"""

from __future__ import annotations

import importlib
import sys
import textwrap
from pathlib import Path

import pytest
import torch

from comfyx.compile.metrics import CompileMetrics
from comfyx.compile.traces import SavedTraces, TracedModule, call_signature, module_fingerprint

KWARGS = {"backend": "aot_eager", "fullgraph": False, "dynamic": None}


class Scaled(torch.nn.Module):
    """A linear layer whose output is scaled by a plain attribute and, if the options say so, doubled: both are
    constants to Dynamo, baked into a trace."""

    def __init__(self) -> None:
        super().__init__()
        self.lin = torch.nn.Linear(8, 8)
        self.factor = 2.0

    def forward(self, x: torch.Tensor, options: dict | None = None) -> torch.Tensor:
        y = self.lin(x) * self.factor
        return y * 2 if (options or {}).get("double") else y


class Breaks(Scaled):
    def forward(self, x: torch.Tensor, options: dict | None = None) -> torch.Tensor:
        torch._dynamo.graph_break()
        return super().forward(x, options)


@pytest.fixture(autouse=True)
def _own_inductor_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCHINDUCTOR_CACHE_DIR", str(tmp_path / "inductor"))
    torch._dynamo.reset()


def traces_of(module: torch.nn.Module, directory: Path) -> SavedTraces:
    return SavedTraces(type(module), KWARGS, directory, "identity", CompileMetrics("test"))


def run(module: torch.nn.Module, traces: SavedTraces, *args, **kwargs) -> torch.Tensor:
    return TracedModule(module, torch.compile(module, **KWARGS), traces)(*args, **kwargs)


def test_a_new_process_state_loads_the_saved_trace_and_computes_the_same(tmp_path):
    module, x = Scaled(), torch.randn(4, 8)
    first = traces_of(module, tmp_path)
    out = run(module, first, x)
    assert (first.metrics.traces_saved, first.metrics.traces_loaded) == (1, 0)
    assert len(list(tmp_path.glob("*.trace"))) == 1
    again = traces_of(module, tmp_path)  # what a restarted server builds
    torch.testing.assert_close(run(module, again, x), out, rtol=0, atol=0)
    assert (again.metrics.traces_saved, again.metrics.traces_loaded) == (0, 1)


def test_weights_are_read_at_each_call(tmp_path):
    module, x = Scaled(), torch.randn(4, 8)
    traces = traces_of(module, tmp_path)
    run(module, traces, x)
    with torch.no_grad():
        module.lin.weight.mul_(3)  # a LoRA-style in-place patch
    torch.testing.assert_close(run(module, traces, x), module(x))
    assert traces.metrics.traces_saved == 1


def test_a_changed_attribute_or_dtype_is_a_new_trace_not_the_old_constant(tmp_path):
    module, x = Scaled(), torch.randn(4, 8)
    traces = traces_of(module, tmp_path)
    run(module, traces, x)
    module.factor = 3.0
    traces.new_sampling()  # the fingerprint is taken again at the first call of a sampling
    torch.testing.assert_close(run(module, traces, x), module(x))
    module.double()
    traces.new_sampling()
    torch.testing.assert_close(run(module, traces, x.double()), module(x.double()))
    assert traces.metrics.traces_saved == 3


def test_the_fingerprint_is_taken_again_only_when_comfyuis_load_state_changes(tmp_path, monkeypatch):
    from comfyx.compile import traces as traces_module

    taken = []
    monkeypatch.setattr(traces_module, "module_fingerprint", lambda m: taken.append(m) or "fingerprint")
    module, x = Scaled(), torch.randn(4, 8)
    traces = traces_of(module, tmp_path)
    for state in (("cuda:0", "patches 1"), ("cuda:0", "patches 1"), ("cuda:0", "patches 2"), None):
        traces.new_sampling(None if state is None else lambda state=state: state)
        run(module, traces, x)
        run(module, traces, x)  # later steps of a sampling never take it
    assert len(taken) == 3  # the first sampling, the new patches, and an unknown state


def test_fingerprint_and_signature_see_what_a_trace_bakes_in():
    module = Scaled()
    before = module_fingerprint(module)
    module.factor = 3.0
    assert module_fingerprint(module) != before
    x = torch.randn(4, 8)
    assert call_signature((x,), {"options": {"double": True}}) != call_signature((x,), {"options": {"double": False}})
    assert call_signature((x,), {}) != call_signature((x[:2],), {})
    # tensors by metadata, not by value: a new sigma each step is the same signature
    assert call_signature((x,), {}) == call_signature((torch.randn(4, 8),), {})


def test_call_options_pick_their_own_trace(tmp_path):
    module, x = Scaled(), torch.randn(4, 8)
    traces = traces_of(module, tmp_path)
    plain = run(module, traces, x, {"double": False})
    doubled = run(module, traces, x, {"double": True})
    torch.testing.assert_close(doubled, 2 * plain)
    assert traces.metrics.traces_saved == 2


def test_a_loaded_trace_whose_guards_refuse_the_call_is_traced_again(tmp_path):
    # the trace is made with grad off (as ComfyUI samples); torch's kept global-state guards refuse it for a
    # call with grad on, whose signature is the same
    module, x = Scaled(), torch.randn(4, 8)
    with torch.no_grad():
        run(module, traces_of(module, tmp_path), x)
    again = traces_of(module, tmp_path)
    with torch.enable_grad():
        torch.testing.assert_close(run(module, again, x), module(x))
    assert (again.metrics.traces_loaded, again.metrics.traces_saved) == (0, 1)


def test_a_trace_of_changed_source_is_stale(tmp_path, monkeypatch):
    source = tmp_path / "src" / "traced_model.py"
    source.parent.mkdir()
    body = """
        import torch

        class Model(torch.nn.Module):
            def __init__(self):
                super().__init__()
                self.lin = torch.nn.Linear(8, 8)

            def forward(self, x):
                return self.lin(x) {}
    """
    source.write_text(textwrap.dedent(body.format("+ 1")))
    monkeypatch.syspath_prepend(str(source.parent))
    module = importlib.import_module("traced_model").Model()
    x = torch.randn(4, 8)
    run(module, traces_of(module, tmp_path / "traces"), x)
    # the next version of the file, imported by the next process: the same class, names and attributes
    source.write_text(textwrap.dedent(body.format("- 1")))
    del sys.modules["traced_model"]
    module_v2 = importlib.import_module("traced_model").Model()
    module_v2.load_state_dict(module.state_dict())
    traces = traces_of(module_v2, tmp_path / "traces")
    torch.testing.assert_close(run(module_v2, traces, x), module_v2(x))
    assert (traces.metrics.traces_loaded, traces.metrics.traces_saved) == (0, 1)


def test_a_model_that_cannot_be_one_graph_runs_through_torch_compile(tmp_path, caplog):
    module, x = Breaks(), torch.randn(4, 8)
    traces = traces_of(module, tmp_path)
    with caplog.at_level("INFO", logger="comfyx.compile.traces"):
        torch.testing.assert_close(run(module, traces, x), module(x))
    assert traces.metrics.traces_saved == 0 and not list(tmp_path.glob("*.trace"))
    assert "cannot be traced as one saved graph" in caplog.text


def test_a_truncated_file_is_ignored_with_a_warning_and_replaced(tmp_path, caplog):
    module, x = Scaled(), torch.randn(4, 8)
    run(module, traces_of(module, tmp_path), x)
    (saved,) = tmp_path.glob("*.trace")
    saved.write_bytes(saved.read_bytes()[:100])
    traces = traces_of(module, tmp_path)
    with caplog.at_level("WARNING", logger="comfyx.compile.traces"):
        torch.testing.assert_close(run(module, traces, x), module(x))
    assert "does not load" in caplog.text
    assert traces.metrics.traces_saved == 1 and saved.stat().st_size > 100


def test_the_traced_module_reads_as_the_model(tmp_path):
    module = Scaled()
    traced = TracedModule(module, torch.compile(module, **KWARGS), traces_of(module, tmp_path))
    assert traced.factor == 2.0 and traced.lin is module.lin
    assert list(traced.parameters()) == []  # the model's parameters stay listed once, by the model


def test_blocks_of_one_class_share_a_trace_each_with_its_own_weights(tmp_path):
    # Flux's blocks, compiled one by one: one trace for all alike, every block computing with its own weights
    blocks, x = [Scaled() for _ in range(3)], torch.randn(4, 8)
    blocks[2].factor = 5.0  # unlike the others: a trace of its own
    traces = traces_of(blocks[0], tmp_path)
    for block in blocks:
        torch.testing.assert_close(run(block, traces, x), block(x))
    assert traces.metrics.traces_saved == 2


@pytest.mark.comfyui
def test_comfyuis_options_name_the_trace_unless_they_only_touch_text_encoders_or_the_server(comfyui, monkeypatch):
    from comfyx.compile.traces import process_identity

    monkeypatch.syspath_prepend(str(comfyui))
    import comfy.cli_args

    base = process_identity(("plan",))
    for name, value in (("port", 9999), ("fp8_e4m3fn_text_enc", True), ("fp16_text_enc", True)):
        with monkeypatch.context() as changed:
            changed.setattr(comfy.cli_args.args, name, value)
            assert process_identity(("plan",)) == base, name
    for name, value in (("fp16_vae", True), ("fp8_e4m3fn_unet", True), ("use_pytorch_cross_attention", True)):
        with monkeypatch.context() as changed:
            changed.setattr(comfy.cli_args.args, name, value)
            assert process_identity(("plan",)) != base, name
