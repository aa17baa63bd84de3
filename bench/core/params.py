"""A condition's extra settings: a frozen, hashable mapping, written as JSON only in a row."""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping

Scalar = bool | int | float | str


def canonical_json(obj: object) -> str:
    """Stable JSON for key columns: sorted keys, no spaces."""
    return json.dumps(obj, sort_keys=True, separators=(",", ":"))


class Params(Mapping[str, Scalar]):
    """A condition's settings beyond columns (early stop, AutoAttack version, transfer source)."""

    __slots__ = ("_items",)

    def __init__(self, items: Mapping[str, Scalar] | None = None, **more: Scalar) -> None:
        merged = {**(items or {}), **more}
        for key, value in merged.items():
            if not isinstance(value, (bool, int, float, str)):
                raise TypeError(
                    f"condition parameter {key!r} must be a bool, number or text, got {value!r}"
                )
        self._items = tuple(sorted(merged.items()))

    def json(self) -> str:
        """The row's `params` column: canonical JSON."""
        return canonical_json(dict(self._items))

    def replace(self, **changes: Scalar) -> Params:
        """A copy with these keys set."""
        return Params(dict(self._items), **changes)

    def without(self, *keys: str) -> Params:
        """A copy without these keys."""
        return Params({k: v for k, v in self._items if k not in keys})

    def __getitem__(self, key: str) -> Scalar:
        for k, v in self._items:
            if k == key:
                return v
        raise KeyError(key)

    def __iter__(self) -> Iterator[str]:
        return (k for k, _ in self._items)

    def __len__(self) -> int:
        return len(self._items)

    def __hash__(self) -> int:
        return hash(self._items)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Mapping) and dict(self._items) == dict(other.items())

    def __repr__(self) -> str:
        return f"Params({dict(self._items)!r})"
