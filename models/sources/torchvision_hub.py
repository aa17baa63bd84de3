"""`tv:NAME[@ENUM|@FILE]`: torchvision classification models with their weights enums (ImageNet-1k -> ImageNet100)."""
from __future__ import annotations

from pathlib import Path

import torch
import torchvision
from torch import nn

from bench import checkpoint
from bench.card import ModelCard
from bench.errors import BenchError, unknown
from models.sources.hub_file import hub_cache_path, read_state_dict, verify_hub_file
from models.sources.imagenet100_head import bench_classes, for_imagenet100


def _classifiers() -> list[str]:
    return torchvision.models.list_models(module=torchvision.models)


def _default_weights(name: str) -> torchvision.models.WeightsEnum:
    return torchvision.models.get_model_weights(name).DEFAULT


def card(target: str, name: str) -> ModelCard:
    """Card of a torchvision classifier: classes and preprocessing from its default weights' metadata."""
    if name not in _classifiers():
        raise unknown("torchvision classification model", name, _classifiers())
    w = _default_weights(name)
    classes = len(w.meta["categories"])
    tf = w.transforms()
    return ModelCard(
        name=target, family="torchvision", build=lambda: for_imagenet100(torchvision.models.get_model(name), classes),
        num_classes=bench_classes(classes), input_size=int(tf.crop_size[0]), mean=tuple(tf.mean), std=tuple(tf.std),
        source="torchvision", data="imagenet100",
        description=f"torchvision {name} ({w.name} by default); ImageNet-1k logits 0-99 kept")


def _weights_enum(name: str, member: str) -> torchvision.models.WeightsEnum:
    enum = torchvision.models.get_model_weights(name)
    if not member:
        return enum.DEFAULT
    try:
        return enum[member]
    except KeyError:
        raise unknown(f"weights of torchvision {name}", member, [m.name for m in enum]) from None


def load(card_: ModelCard, name: str, weights: str, cache: Path) -> tuple[nn.Module, str, dict]:
    """Weights from a local state-dict file, or from a weights enum via torch.hub's cache (download if absent)."""
    net = card_.build()
    inner = getattr(net, "net", net)
    if weights.endswith((".pth", ".pt", ".safetensors")) or "/" in weights:
        path = Path(weights)
        sd = read_state_dict(path)
        checkpoint.load_weights(inner, sd, f"weights file {path}")
        return net, "file:" + checkpoint.sha256(path)[:12], {"file": str(path)}
    w = _weights_enum(name, weights)
    path = hub_cache_path(w.url)
    if path.is_file():
        digest = verify_hub_file(path)
    else:
        digest = ""
    try:
        sd = torch.hub.load_state_dict_from_url(w.url, progress=False, check_hash=True, map_location="cpu",
                                                weights_only=True)
    except Exception as e:  # noqa: BLE001  (urllib, OSError, RuntimeError on a bad hash...)
        raise BenchError(f"weights {w} for tv:{name} are not in the torch hub cache ({path}) and could not be "
                         f"downloaded: {type(e).__name__}: {e}") from None
    digest = digest or verify_hub_file(path)
    checkpoint.load_weights(inner, sd, f"torchvision weights {w}")
    return net, f"{type(w).__name__}.{w.name}:{digest[:8]}", {"url": w.url}
