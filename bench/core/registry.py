"""A small typed name -> object registry, so every lookup fails the same helpful way."""

from __future__ import annotations

import fnmatch
from collections.abc import Iterator
from typing import Generic, TypeVar

from bench.core.errors import unknown

T = TypeVar("T")


class Registry(Generic[T]):
    """Names map to objects; duplicates are errors and unknown names suggest close matches."""

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self._items: dict[str, T] = {}

    def register(self, name: str, obj: T) -> T:
        """Add `obj` under `name`; a second registration of the same name is a bug."""
        if name in self._items:
            raise ValueError(f"{self.kind} {name!r} is already registered")
        self._items[name] = obj
        return obj

    def get(self, name: str) -> T:
        """Return the object, or raise a BenchError naming the closest registered names."""
        try:
            return self._items[name]
        except KeyError:
            raise unknown(self.kind, name, self._items) from None

    def names(self, pattern: str = "*") -> list[str]:
        """Sorted names matching a shell-style pattern."""
        return sorted(n for n in self._items if fnmatch.fnmatchcase(n, pattern))

    def __contains__(self, name: object) -> bool:
        return name in self._items

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())

    def __len__(self) -> int:
        return len(self._items)


MODELS: Registry = Registry("model")
"""Every comparable model, by name: ours, the baselines and any user model that registers."""
