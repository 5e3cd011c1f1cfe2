"""A size-capped mapping that forgets the least recently used entry first: every in-process cache is one."""

from __future__ import annotations

import collections
import typing

__all__ = ["LRU"]

K = typing.TypeVar("K")
V = typing.TypeVar("V")


class LRU(collections.OrderedDict[K, V]):
    """An ``OrderedDict`` of at most ``capacity`` entries; ``get`` and setting an entry make it the newest.

    ```
    cache: LRU[str, int] = LRU(capacity=10_000)
    cache["a"] = 1            # past capacity, the least recently used entry goes
    cache.get("a")            # a hit makes "a" the most recently used
    ```
    """

    def __init__(self, capacity: int) -> None:
        super().__init__()
        if capacity < 1:
            raise ValueError("an LRU needs room for at least one entry")
        self.capacity = capacity

    def get(self, key: K, default: V | None = None) -> V | None:  # type: ignore[override]
        """The value (now the most recently used), or ``default``."""
        try:
            self.move_to_end(key)
        except KeyError:
            return default
        return self[key]

    def __setitem__(self, key: K, value: V) -> None:
        super().__setitem__(key, value)
        self.move_to_end(key)
        while len(self) > self.capacity:
            self.popitem(last=False)
