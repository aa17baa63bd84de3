"""`rb:[DATASET/THREAT/]NAME`: RobustBench model-zoo entries, weights through
robustbench.load_model.

DATASET is cifar10, cifar100 or imagenet (default imagenet; ImageNet-1k -> ImageNet100) and THREAT
Linf, L2 or corruptions (default: the one zoo list that has NAME). Weights live in
`$BENCH_RB_MODELS` (default `$BENCH_CACHE/robustbench`) as DATASET/THREAT/NAME.pt, where robustbench
downloads them.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

from torch import nn

from bench.core.card import ModelCard
from bench.core.errors import BenchError, first_line, unknown
from bench.load import checkpoint
from bench.models.sources.autoattack_shim import import_robustbench
from bench.models.sources.imagenet100_head import bench_classes, for_imagenet100

CLASSES = {"cifar10": 10, "cifar100": 100, "imagenet": 1000}
SIZES = {"cifar10": 32, "cifar100": 32, "imagenet": 224}


def _zoo() -> dict:
    import_robustbench()
    from robustbench.model_zoo import model_dicts

    return {d.value: {t.value: v for t, v in tt.items()} for d, tt in model_dicts.items()}


def parse(name: str) -> tuple[str, str, str]:
    """(dataset, threat, model name) of `[DATASET/THREAT/]NAME`, checked against the zoo."""
    zoo = _zoo()
    parts = name.split("/")
    if len(parts) not in (1, 3):
        raise BenchError(
            f"rb:{name}: use rb:NAME or rb:DATASET/THREAT/NAME (e.g. "
            "rb:imagenet/Linf/Salman2020Do_R18)"
        )
    dataset, threat, model = ("imagenet", "", parts[0]) if len(parts) == 1 else parts
    if dataset not in zoo:
        raise unknown("RobustBench data set", dataset, zoo)
    if threat and threat not in zoo[dataset]:
        raise unknown(f"RobustBench threat model for {dataset}", threat, zoo[dataset])
    if dataset == "imagenet" and model.startswith("Standard"):
        raise BenchError(
            f"rb:{name} is torchvision's ImageNet weights: use tv:resnet50@IMAGENET1K_V1"
        )
    lists = [threat] if threat else [t for t in zoo[dataset] if model in zoo[dataset][t]]
    if not threat and len(lists) > 1:
        raise BenchError(
            f"rb:{name} is in several {dataset} lists ({', '.join(lists)}): "
            f"write rb:{dataset}/THREAT/{model}"
        )
    if not lists or model not in zoo[dataset][lists[0]]:
        known = {m for t in ([threat] if threat else zoo[dataset]) for m in zoo[dataset][t]}
        raise unknown(f"RobustBench {dataset} model", model, known)
    return dataset, lists[0], model


def model_dir() -> Path:
    """Where RobustBench weights are looked for (and downloaded to)."""
    from bench.data import cache_dir

    return Path(os.environ.get("BENCH_RB_MODELS") or cache_dir() / "robustbench")


def _build(factory: Callable[[], nn.Module], name: str) -> nn.Module:
    """The zoo entry's network; some robustbench 1.1.1 entries ask timm for unregistered models."""
    try:
        return factory()
    except RuntimeError as e:
        if not str(e).startswith("Unknown model"):
            raise
        raise BenchError(
            f"rb:{name}: this robustbench release cannot build it: its zoo entry asks timm for a "
            f"model that is not registered ({first_line(e)}); the XCiT entries are "
            "RobustBench/robustbench#162, fixed after robustbench 1.1.1"
        ) from None


def card(target: str, name: str) -> ModelCard:
    """Card of a zoo entry: RobustBench models take [0,1] inputs and normalize themselves."""
    dataset, threat, model = parse(name)
    factory = _zoo()[dataset][threat][model]["model"]
    classes = CLASSES[dataset]
    return ModelCard(
        name=target,
        family="robustbench",
        build=lambda: for_imagenet100(_build(factory, name), classes),
        num_classes=bench_classes(classes),
        input_size=SIZES[dataset],
        mean=None,
        std=None,
        source="robustbench",
        data="imagenet100" if dataset == "imagenet" else dataset,
        description=f"RobustBench {dataset} {threat} {model}",
    )


def load(net: nn.Module, name: str, weights: str, cache: Path) -> tuple[str, dict]:
    """robustbench.load_model from model_dir() (downloads a missing file if there is internet)."""
    if weights:
        raise BenchError(
            f"rb:{name}: weights come from the zoo; put a file at "
            f"{model_dir()}/DATASET/THREAT/NAME.pt instead of @{weights}"
        )
    from robustbench.utils import load_model

    dataset, threat, model = parse(name)
    path = model_dir() / dataset / threat / f"{model}.pt"
    try:
        loaded = load_model(model, model_dir=model_dir(), dataset=dataset, threat_model=threat)
    except Exception as e:  # noqa: BLE001  (gdown, requests, torch and key errors)
        state = "is not there" if not path.is_file() else "does not load"
        raise BenchError(
            f"RobustBench weights for {model} ({dataset}, {threat}): {path} {state} and "
            f"robustbench failed: {type(e).__name__}: {first_line(e)}"
        ) from None
    checkpoint.load_weights(net, loaded.state_dict(), f"RobustBench weights {path}")
    digest = checkpoint.sha256(path) if path.is_file() else "unknown"
    return f"rb:{digest[:12]}", {"file": str(path)}
