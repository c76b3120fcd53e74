"""Content keys for the nodes of a prompt graph, computed in O(1) per node.

ComfyUI's ``CacheKeySetInputSignature`` writes out every node's whole ancestry, so a
chain of N nodes costs O(N²) to key and keys compare in O(N). Here a node's key is
its class, IS_CHANGED value, constant inputs and the *keys* of the nodes it links
to (a Merkle tree). Keys are interned, so equal keys are usually the same object,
hash in O(1) and compare in O(inputs). Two nodes get equal keys exactly when they
compute the same thing from the same constants — the same cache hits as ComfyUI,
with one difference: ComfyUI also tells apart a node that reads two outputs of one
shared ancestor from one that reads two separate but identical ancestors; here both
get the same key (their outputs are the same values).
"""

from __future__ import annotations

import weakref
from collections.abc import Awaitable, Callable, Hashable
from typing import Any


def is_link(value: Any) -> bool:
    """ComfyUI's link shape: ``[node_id: str, output_index: int]``."""
    return (isinstance(value, list) and len(value) == 2 and isinstance(value[0], str)
            and isinstance(value[1], (int, float)) and not isinstance(value[1], bool))


class ContentKey:
    """A hashable node key whose hash is computed once."""

    __slots__ = ("__weakref__", "_hash", "parts")

    def __init__(self, parts: tuple):
        self.parts = parts
        self._hash = hash(parts)

    def __hash__(self) -> int:
        return self._hash

    def __eq__(self, other: object) -> bool:
        if self is other:
            return True
        return isinstance(other, ContentKey) and self._hash == other._hash and self.parts == other.parts

    def __repr__(self) -> str:
        return f"ContentKey({self.parts!r})"


_interned: weakref.WeakValueDictionary[ContentKey, ContentKey] = weakref.WeakValueDictionary()


def intern_key(parts: tuple) -> ContentKey:
    """The one live ContentKey with these parts."""
    key = ContentKey(parts)
    existing = _interned.get(key)
    if existing is not None:
        return existing
    _interned[key] = key
    return key


NodeLookup = Callable[[str], "dict | None"]
Immediate = Callable[[str, dict], Awaitable[tuple]]


class KeyTable:
    """Keys of the nodes of one graph; ``immediate(node_id, node)`` gives a node's own part.

    ``immediate`` returns the node's identity without its links (class, IS_CHANGED
    value, node id where the node is not idempotent); constants are made hashable with
    ``hashable``. ``get_node`` returns None for a node id that is not in the graph,
    whose key then never equals any other.
    """

    def __init__(self, get_node: NodeLookup, immediate: Immediate, hashable: Callable[[Any], Hashable]):
        self._get_node = get_node
        self._immediate = immediate
        self._hashable = hashable
        self._keys: dict[str, Hashable] = {}

    async def key(self, node_id: str) -> Hashable:
        """The key of ``node_id``, computing missing ancestors' keys first (iteratively)."""
        if node_id in self._keys:
            return self._keys[node_id]
        stack = [node_id]
        expanded: set[str] = set()
        while stack:
            current = stack[-1]
            if current in self._keys:
                stack.pop()
                continue
            node = self._get_node(current)
            if node is None:
                self._keys[current] = float("nan")
                stack.pop()
                continue
            missing = [v[0] for v in node["inputs"].values() if is_link(v) and v[0] not in self._keys]
            if missing and current not in expanded:
                expanded.add(current)
                stack.extend(missing)
                continue
            if missing:  # part of a cycle: ComfyUI reports the cycle; it is never cached
                self._keys[current] = float("nan")
                stack.pop()
                continue
            stack.pop()
            self._keys[current] = await self._compute(current, node)
        return self._keys[node_id]

    async def _compute(self, node_id: str, node: dict) -> ContentKey:
        parts: list = [await self._immediate(node_id, node)]
        inputs = node["inputs"]
        for name in sorted(inputs):
            value = inputs[name]
            if is_link(value):
                parts.append((name, "LINK", self._keys[value[0]], value[1]))
            else:
                parts.append((name, self._hashable(value)))
        return intern_key(tuple(parts))
