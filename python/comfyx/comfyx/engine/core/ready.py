"""The ready nodes of a topological dissolve, kept up to date instead of rescanned.

ComfyUI's ``TopologicalSort.get_ready_nodes`` scans every pending node each time a node
is staged, so a chain of N nodes costs O(N²) to schedule. Its state is two dicts:
``pendingNodes`` (insertion ordered) and ``blockCount``. :class:`ReadyIndex` provides
drop-in replacements for both that keep the set of pending nodes whose block count is
0 as they change, and hands them out in ``pendingNodes`` order — the order ComfyUI's scan
returns, so the same node is picked next. Every mutator of the two dicts keeps the index
current (ComfyUI itself only assigns and deletes keys).
"""

from __future__ import annotations

import itertools
from collections.abc import Hashable
from typing import Self


class ReadyIndex:
    """The pending nodes with no blocks, ordered as ComfyUI's ``pendingNodes`` dict would list them."""

    def __init__(self) -> None:
        self.pending = _PendingNodes(self)
        self.block_count = _BlockCount(self)
        self._order = itertools.count()
        self._position: dict[Hashable, int] = {}  # pending node -> when it joined pendingNodes
        self._ready: set[Hashable] = set()

    def ready(self) -> list[Hashable]:
        """What ``[n for n in pendingNodes if blockCount[n] == 0]`` gives, in O(ready · log ready)."""
        return sorted(self._ready, key=self._position.__getitem__)

    def _joined(self, node_id: Hashable) -> None:
        self._position[node_id] = next(self._order)
        self._update(node_id)

    def _left(self, node_id: Hashable) -> None:
        del self._position[node_id]
        self._ready.discard(node_id)

    def _update(self, node_id: Hashable) -> None:
        if node_id in self._position and self.block_count.get(node_id) == 0:
            self._ready.add(node_id)
        else:
            self._ready.discard(node_id)


class _TrackedDict(dict):
    """A dict whose every mutator goes through ``__setitem__`` / ``__delitem__``, which subclasses extend
    to keep the index current (dict's own ``pop``, ``update``, ... would change it behind their back)."""

    def pop(self, key: Hashable, *default: object) -> object:
        if key in self:
            value = self[key]
            del self[key]
            return value
        if default:
            return default[0]
        raise KeyError(key)

    def popitem(self) -> tuple[Hashable, object]:
        if not self:
            raise KeyError("popitem(): dictionary is empty")
        key = next(reversed(self))
        return key, self.pop(key)

    def setdefault(self, key: Hashable, default: object = None) -> object:
        if key not in self:
            self[key] = default
        return self[key]

    def update(self, other: object = (), /, **kwargs: object) -> None:
        for key, value in dict(other, **kwargs).items():
            self[key] = value

    def __ior__(self, other: object) -> Self:
        self.update(other)
        return self

    def clear(self) -> None:
        for key in list(self):
            del self[key]


class _PendingNodes(_TrackedDict):
    """``pendingNodes``: a dict that tells its index when a node joins or leaves."""

    def __init__(self, index: ReadyIndex):
        super().__init__()
        self._index = index

    def __setitem__(self, node_id: Hashable, value: object) -> None:
        joined = node_id not in self
        super().__setitem__(node_id, value)
        if joined:
            self._index._joined(node_id)

    def __delitem__(self, node_id: Hashable) -> None:
        super().__delitem__(node_id)
        self._index._left(node_id)


class _BlockCount(_TrackedDict):
    """``blockCount``: a dict that tells its index when a count changes."""

    def __init__(self, index: ReadyIndex):
        super().__init__()
        self._index = index

    def __setitem__(self, node_id: Hashable, count: int) -> None:
        super().__setitem__(node_id, count)
        self._index._update(node_id)

    def __delitem__(self, node_id: Hashable) -> None:
        super().__delitem__(node_id)
        self._index._update(node_id)
