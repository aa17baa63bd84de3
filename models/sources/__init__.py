"""Weights from other libraries behind the same contract: `tv:NAME`, `timm:NAME`, `rb:[DATASET/THREAT/]NAME`.

Each source module turns a name into a ModelCard (random initialisation, no download) and loads
its pretrained weights (the library's own cache and download code; checked where a checksum is known).
"""
from __future__ import annotations

from pathlib import Path
from types import ModuleType

from torch import nn

from bench.card import ModelCard
from bench.errors import BenchError
from bench.registry import MODELS


def _modules() -> dict[str, ModuleType]:
    from models.sources import robustbench_zoo, timm_hub, torchvision_hub

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


def load(card: ModelCard, weights: str, cache: Path) -> tuple[nn.Module, str, dict]:
    """(network with pretrained weights, weights label, meta) for an external card."""
    prefix, _, name = card.name.partition(":")
    return _modules()[prefix].load(card, name, weights, cache)
