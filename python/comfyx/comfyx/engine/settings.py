"""The engine settings: which executor runs prompts (``--engine``), the BMF engine's knobs, its model cache.

Read once at start-up with every other setting (:mod:`comfyx.settings`); they then travel as one
:class:`EngineSettings` to :func:`comfyx.engine.install` and the executor. ``BMF_COMFY_FORCE``
(``--bmf-force``) and a prompt's ``extra_data.enable_bmf`` are the engine's published names and
stay: with the force off, only prompts that ask for BMF run on it.
"""

from __future__ import annotations

from dataclasses import dataclass

from comfyx.settings.spec import SIZE, SWITCH, Group, Setting, choice, seconds, whole

ENGINES = ("stock", "bmf")
DEFAULT_ENGINE = "bmf"
# Each worker is a BMF scheduler thread of its own; more than this only adds threads.
MAX_WORKERS = 64


@dataclass(frozen=True)
class EngineSettings:
    name: str = DEFAULT_ENGINE  # --engine: ComfyUI's executor (stock) or the BMF engine
    force: bool = True  # --bmf-force (BMF_COMFY_FORCE): off, only prompts with extra_data.enable_bmf run on BMF
    workers: int = 8  # --bmf-workers: BMF worker nodes (threads)
    progress_interval: float = 0.1  # --bmf-progress-interval: seconds between progress_state messages
    model_cache: bool = True  # --model-cache: keep loaded models (loader outputs) across prompts
    model_cache_size: int | None = None  # --model-cache-size: bytes of models kept; None: until RAM runs short


GROUP = Group("engine", "engine (prompt executor)", (
    Setting("name", "--engine", choice(*ENGINES), "prompt executor: the BMF engine (the default; where BMF cannot "
            "be imported, stock with a warning, unless bmf was asked for by name) or ComfyUI's own stock one",
            nix="engine"),
    Setting("force", "--bmf-force", SWITCH, "run every prompt on the BMF engine; off, only prompts whose "
            "extra_data.enable_bmf is true", nix="bmf.force", env_aliases=("BMF_COMFY_FORCE",)),
    Setting("workers", "--bmf-workers", whole(1, MAX_WORKERS), "BMF worker threads that run independent branches "
            "at the same time", nix="bmf.workers", old_env=("COMFYX_ENGINE_WORKERS",)),
    Setting("progress_interval", "--bmf-progress-interval", seconds(0.0, 60.0), "at most one progress_state "
            "message per this many seconds (0: every message, as stock sends them)", nix="bmf.progressInterval",
            old_env=("COMFYX_PROGRESS_STATE_INTERVAL",)),
    Setting("model_cache", "--model-cache", SWITCH, "keep the models loader nodes loaded across prompts, so that "
            "switching workflows does not reload them (the BMF engine's)", nix="models.cache.enable"),
    Setting("model_cache_size", "--model-cache-size", SIZE, "the most bytes of models --model-cache keeps (the "
            "least recently used go first); unset, models are kept until free RAM falls below 15%",
            nix="models.cache.size"),
))
