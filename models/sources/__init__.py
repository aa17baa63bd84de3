"""Weights from other libraries behind the same contract: `tv:NAME`, `timm:NAME`,
`rb:[DATASET/THREAT/]NAME`.

Each source module turns a name into a ModelCard (random initialisation, no download) and loads its
pretrained weights (the library's own cache and download code; checked where a checksum is known).
"""

from __future__ import annotations

from pathlib import Path
from types import ModuleType

from torch import nn

from bench.core.card import ModelCard
from bench.core.errors import BenchError
from bench.core.registry import MODELS
from bench.models.sources.imagenet100_head import classifier_of


def _modules() -> dict[str, ModuleType]:
    from bench.models.sources import robustbench_zoo, timm_hub, torchvision_hub

    return {"tv": torchvision_hub, "timm": timm_hub, "rb": robustbench_zoo}


PREFIXES = ("tv", "timm", "rb")


def is_external(target: str) -> bool:
    """Whether a spec's model part names another library's model (`tv:`, `timm:`, `rb:`)."""
    return target.partition(":")[0] in PREFIXES and ":" in target


def register(target: str) -> str:
    """Register the card of `prefix:name` once; returns the registry name (= target)."""
    if target not in MODELS:
        prefix, _, name = target.partition(":")
        if not name:
            raise BenchError(f"model spec {target!r}: give a model name after '{prefix}:'")
        MODELS.register(target, _modules()[prefix].card(target, name))
    return target


def load(card: ModelCard, net: nn.Module, weights: str, cache: Path) -> tuple[str, dict]:
    """Load pretrained weights into `net` (from card.build()); return the weights label and meta."""
    prefix, _, name = card.name.partition(":")
    return _modules()[prefix].load(classifier_of(net), name, weights, cache)
