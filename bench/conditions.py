"""Conditions an image is evaluated under (clean, corruption, attack) and the named suites."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from bench.errors import BenchError

KINDS = ("clean", "corruption", "attack")


@dataclass(frozen=True, slots=True, kw_only=True)
class Condition:
    """One condition; its fields are the condition columns of a results row."""

    kind: Literal["clean", "corruption", "attack"]
    name: str = "clean"
    source: str = ""  # who produced the images: data set loader, corruption backend, attack library
    protocol: Literal["strict", "paper", ""] = ""
    severity: int = 0
    norm: Literal["linf", "l2", ""] = ""
    epsilon: float = 0.0  # fraction of the [0,1] range; shown as k/255
    steps: int = 0
    step_size: float = 0.0
    restarts: int = 0
    params: str = "{}"  # canonical sorted JSON for anything else

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise BenchError(f"unknown condition kind {self.kind!r} (known: {', '.join(KINDS)})")
        if self.kind == "corruption" and not 1 <= self.severity <= 5:
            raise BenchError(f"severity must be in 1..5, got {self.severity}")
        if not 0.0 <= self.epsilon <= 1.0:
            raise BenchError(f"epsilon must be in [0, 1] (pixel units), got {self.epsilon}")


CLEAN = Condition(kind="clean", name="clean", source="dataset")

SUITES: dict[str, tuple[Condition, ...]] = {
    "clean": (CLEAN,),
}


def suite(name: str) -> tuple[Condition, ...]:
    """The conditions of a named suite."""
    try:
        return SUITES[name]
    except KeyError:
        raise BenchError(f"unknown suite {name!r} (known: {', '.join(SUITES)})") from None
