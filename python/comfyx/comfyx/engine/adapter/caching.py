"""ComfyUI's own caches (``comfy_execution.caching``), keyed in O(1) per node, plus the model cache.

The cache classes, their modes (classic, ``--cache-lru N``, ``--cache-none``) and the
IS_CHANGED / fingerprint lookups are ComfyUI's; only the key set is ours
(:mod:`comfyx.engine.core.keys`), which removes the executor's O(N²) keying. The model cache
(``--model-cache``, ``--model-cache-size``) keeps loader nodes' outputs across prompts in the
classic mode (:class:`ModelKeepingCache`).
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Hashable
from typing import Any

import execution
import nodes
import psutil
from comfy_execution.caching import (
    CacheKeySet,
    CacheKeySetID,
    DependencyAwareCache,
    HierarchicalCache,
    LRUCache,
    include_unique_id_in_input,
    to_hashable,
)
from comfy_execution.graph import DynamicPrompt

from comfyx.engine.core.keys import KeyTable, is_link
from comfyx.engine.core.policy import DEVICE_TYPES

MIN_FREE_RAM_FRACTION = 0.15


class FastInputSignature(CacheKeySet):
    """``CacheKeySetInputSignature`` with Merkle keys (same inputs to the key, same hits)."""

    def __init__(self, dynprompt: DynamicPrompt, node_ids: Any, is_changed_cache: Any):
        super().__init__(dynprompt, node_ids, is_changed_cache)
        self.dynprompt = dynprompt
        self.is_changed_cache = is_changed_cache
        self._table = KeyTable(self._node, self._immediate, to_hashable)

    async def add_keys(self, node_ids: Any) -> None:
        for node_id in node_ids:
            if node_id in self.keys or not self.dynprompt.has_node(node_id):
                continue
            node = self.dynprompt.get_node(node_id)
            self.keys[node_id] = await self._table.key(node_id)
            self.subcache_keys[node_id] = (node_id, node["class_type"])

    def _node(self, node_id: str) -> dict | None:
        return self.dynprompt.get_node(node_id) if self.dynprompt.has_node(node_id) else None

    async def _immediate(self, node_id: str, node: dict) -> tuple:
        class_type = node["class_type"]
        class_def = nodes.NODE_CLASS_MAPPINGS[class_type]
        parts = [class_type, to_hashable(await self.is_changed_cache.get(node_id))]
        if getattr(class_def, "NOT_IDEMPOTENT", False) or include_unique_id_in_input(class_type):
            parts.append(node_id)
        return tuple(parts)


def is_loader(node: dict) -> bool:
    """A node that only reads constants and produces a model-like object (any loader node)."""
    class_def = nodes.NODE_CLASS_MAPPINGS.get(node["class_type"])
    if class_def is None or getattr(class_def, "OUTPUT_NODE", False):
        return False
    if any(is_link(value) for value in node["inputs"].values()):
        return False
    returns = getattr(class_def, "RETURN_TYPES", ())
    return any(t in DEVICE_TYPES and t not in ("LATENT", "CONDITIONING") for t in returns if isinstance(t, str))


class ModelKeepingCache(HierarchicalCache):
    """ComfyUI's classic output cache that keeps loader outputs (models) across prompts.

    The classic cache drops every output the next prompt does not use, so alternating two
    workflows reloads their checkpoints each time. Outputs of loader nodes (:func:`is_loader`)
    are kept instead, least recently used first out, while they take at most ``budget`` bytes
    (:func:`model_bytes`; None: no limit) and free RAM stays above
    :data:`MIN_FREE_RAM_FRACTION`, and put back when a later prompt has the same key. Eviction
    drops the last reference, and ComfyUI's model manager forgets the model as it does when the
    stock cache drops it (``cleanup_models_gc``); a kept model stays in the model manager's list
    and is unloaded by it under memory pressure like any other.
    """

    def __init__(self, key_class: type, budget: int | None):
        super().__init__(key_class)
        self.budget = budget
        self.kept: OrderedDict[Hashable, tuple[Any, int]] = OrderedDict()  # key -> (output, bytes)
        self._loader_keys: set[Hashable] = set()

    async def set_prompt(self, dynprompt: DynamicPrompt, node_ids: Any, is_changed_cache: Any) -> None:
        await super().set_prompt(dynprompt, node_ids, is_changed_cache)
        for key in self.cache_key_set.get_used_keys():
            if key in self.kept and key not in self.cache:
                self.cache[key] = self.kept.pop(key)[0]

    def set(self, node_id: str, value: Any) -> None:
        super().set(node_id, value)
        if self.dynprompt.get_parent_node_id(node_id) is None and is_loader(self.dynprompt.get_node(node_id)):
            self._loader_keys.add(self.cache_key_set.get_data_key(node_id))

    def _clean_cache(self) -> None:
        used = set(self.cache_key_set.get_used_keys())
        for key in [k for k in self.cache if k not in used]:
            value = self.cache.pop(key)
            if key in self._loader_keys:
                self.kept[key] = (value, model_bytes(value))
                self.kept.move_to_end(key)
        self._loader_keys &= set(self.cache) | set(self.kept)
        while self.kept and (self._over_budget() or _ram_is_short()):
            self.kept.popitem(last=False)

    def _over_budget(self) -> bool:
        return self.budget is not None and sum(size for _, size in self.kept.values()) > self.budget


def model_bytes(output: Any) -> int:
    """Bytes of the models in a node's output: each ModelPatcher's ``model_size()`` (CLIP and VAE hold
    one as ``patcher``), each model counted once; anything else counts 0."""
    seen: set[int] = set()
    total = 0
    stack = [output]
    while stack:
        item = stack.pop()
        if isinstance(item, (list, tuple)):
            stack.extend(item)
            continue
        patcher = getattr(item, "patcher", item)
        size = getattr(patcher, "model_size", None)
        model = getattr(patcher, "model", None)
        if callable(size) and model is not None and id(model) not in seen:
            seen.add(id(model))
            total += size()
    return total


def _ram_is_short() -> bool:
    memory = psutil.virtual_memory()
    return memory.available < memory.total * MIN_FREE_RAM_FRACTION


class FastCacheSet(execution.CacheSet):
    """ComfyUI's ``CacheSet`` (same three modes) with :class:`FastInputSignature` keys.

    ``model_cache``: whether the classic mode keeps loader outputs across prompts, at most
    ``model_cache_size`` bytes of them (None: as free RAM allows).
    """

    def __init__(self, cache_type: Any = None, cache_size: int | None = None, *, model_cache: bool,
                 model_cache_size: int | None):
        # read by init_classic_cache, which ComfyUI's __init__ calls
        self.model_cache, self.model_cache_size = model_cache, model_cache_size
        super().__init__(cache_type=cache_type, cache_size=cache_size)

    def init_classic_cache(self) -> None:
        if self.model_cache:
            self.outputs = ModelKeepingCache(FastInputSignature, self.model_cache_size)
        else:
            self.outputs = HierarchicalCache(FastInputSignature)
        self.ui = HierarchicalCache(FastInputSignature)
        self.objects = HierarchicalCache(CacheKeySetID)

    def init_lru_cache(self, cache_size: int) -> None:
        self.outputs = LRUCache(FastInputSignature, max_size=cache_size)
        self.ui = LRUCache(FastInputSignature, max_size=cache_size)
        self.objects = HierarchicalCache(CacheKeySetID)

    def init_dependency_aware_cache(self) -> None:
        self.outputs = DependencyAwareCache(FastInputSignature)
        self.ui = DependencyAwareCache(FastInputSignature)
        self.objects = DependencyAwareCache(CacheKeySetID)
