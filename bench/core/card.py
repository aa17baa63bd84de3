"""What the harness knows about a model without building it (torch-free)."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from bench.core.registry import MODELS


@dataclass(frozen=True, slots=True, kw_only=True)
class ModelCard:
    """Name, family, class count, input size and normalization of one comparable model."""

    name: str
    family: str  # plot series: mgnet, mgbase, resnet, user
    build: Callable[[], Any]  # returns an nn.Module (a BenchModel, or a plain classifier)
    num_classes: int
    input_size: int
    mean: tuple[float, ...] | None  # None: the module normalizes itself
    std: tuple[float, ...] | None
    exits: tuple[int, ...] = (1,)
    source: str = "bench"  # bench | official | user
    data: str = ""  # the data set the model is meant for ("" = any with matching classes)
    hidden: bool = False  # tiny test models: listed only with --all
    description: str = ""

    def __post_init__(self) -> None:
        # it goes into tables, HTML and file names
        if not re.fullmatch(r"[A-Za-z0-9_.:/+-]+", self.name):
            raise ValueError(f"model name {self.name!r}: use letters, digits and _ . : / + - only")
        if (self.mean is None) != (self.std is None):
            raise ValueError(f"model {self.name!r}: give both mean and std, or neither")
        if (
            self.num_classes < 2
            or self.input_size < 1
            or self.exits != tuple(range(1, len(self.exits) + 1))
        ):
            raise ValueError(
                f"model {self.name!r}: num_classes >= 2, input_size >= 1 and exits = (1, ..., E) "
                "required"
            )


def file_stem(name: str) -> str:
    """A model or condition name for a file name: `tv:resnet50` -> `tv_resnet50`, no sub-folders."""
    return name.replace(":", "_").replace("/", "_")


def register_model(
    name: str,
    *,
    num_classes: int,
    input_size: int,
    mean: tuple[float, ...] | None = (0.485, 0.456, 0.406),
    std: tuple[float, ...] | None = (0.229, 0.224, 0.225),
    exits: tuple[int, ...] = (1,),
    family: str = "user",
    source: str = "user",
    data: str = "",
    hidden: bool = False,
    description: str = "",
) -> Callable[[Callable[[], Any]], Callable[[], Any]]:
    """Decorator: register a zero-argument factory so the harness can compare it by name."""

    def deco(factory: Callable[[], Any]) -> Callable[[], Any]:
        MODELS.register(
            name,
            ModelCard(
                name=name,
                family=family,
                build=factory,
                num_classes=num_classes,
                input_size=input_size,
                mean=None if mean is None else tuple(mean),
                std=None if std is None else tuple(std),
                exits=tuple(exits),
                source=source,
                data=data,
                hidden=hidden,
                description=description or (factory.__doc__ or "").strip(),
            ),
        )
        return factory

    return deco
