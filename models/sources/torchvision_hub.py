"""`tv:NAME[@ENUM|@FILE]`: torchvision classifiers and weight enums (ImageNet-1k -> ImageNet100)."""

from __future__ import annotations

from pathlib import Path

import torch
import torchvision
from torch import nn

from bench.core.card import ModelCard
from bench.core.errors import BenchError, unknown
from bench.load import checkpoint
from bench.models.sources.hub_file import hub_cache_path, load_file, verify_hub_file
from bench.models.sources.imagenet100_head import bench_classes, for_imagenet100


def _classifiers() -> list[str]:
    return torchvision.models.list_models(module=torchvision.models)


def _default_weights(name: str) -> torchvision.models.WeightsEnum:
    return torchvision.models.get_model_weights(name).DEFAULT


# Builders that change the network when given weights (transform_input on, which re-normalizes
# inputs to the TF-ported weights' space, and auxiliary heads): a model built without weights would
# run them wrongly.
BUILT_DIFFERENTLY_WITH_WEIGHTS = ("googlenet", "inception_v3")


def card(target: str, name: str) -> ModelCard:
    """Card of a torchvision model: classes, preprocessing from its default weights' metadata."""
    if name not in _classifiers():
        raise unknown("torchvision classification model", name, _classifiers())
    if name in BUILT_DIFFERENTLY_WITH_WEIGHTS:
        raise BenchError(
            f"tv:{name} is not supported: torchvision builds it differently when it loads its "
            "weights (transform_input re-normalizes the input), so the harness's copy would run "
            "them wrongly"
        )
    w = _default_weights(name)
    classes = len(w.meta["categories"])
    tf = w.transforms()
    return ModelCard(
        name=target,
        family="torchvision",
        build=lambda: for_imagenet100(torchvision.models.get_model(name), classes),
        num_classes=bench_classes(classes),
        input_size=int(tf.crop_size[0]),
        mean=tuple(tf.mean),
        std=tuple(tf.std),
        source="torchvision",
        data="imagenet100",
        description=f"torchvision {name} ({w.name} by default); ImageNet-1k logits 0-99 kept",
    )


def _weights_enum(name: str, member: str) -> torchvision.models.WeightsEnum:
    enum = torchvision.models.get_model_weights(name)
    if not member:
        return enum.DEFAULT
    try:
        return enum[member]
    except KeyError:
        raise unknown(f"weights of torchvision {name}", member, [m.name for m in enum]) from None


def load(net: nn.Module, name: str, weights: str, cache: Path) -> tuple[str, dict]:
    """Weights from a state-dict file, or an enum via torch.hub's cache (downloaded if absent)."""
    if (
        weights.endswith((".pth", ".pt", ".bin", ".ckpt", ".safetensors"))
        or "/" in weights
        or Path(weights).is_file()
    ):
        return load_file(net, Path(weights), lambda sd: _current_keys(name, sd))
    w = _weights_enum(name, weights)
    _check_same_preprocessing(name, w)
    path = hub_cache_path(w.url)
    if path.is_file():
        digest = verify_hub_file(path)
    else:
        digest = ""
    try:
        sd = torch.hub.load_state_dict_from_url(
            w.url, progress=False, check_hash=True, map_location="cpu", weights_only=True
        )
    except Exception as e:  # noqa: BLE001  (urllib, OSError, RuntimeError on a bad hash...)
        raise BenchError(
            f"weights {w} for tv:{name} are not in the torch hub cache ({path}) and could not be "
            f"downloaded: {type(e).__name__}: {e}"
        ) from None
    digest = digest or verify_hub_file(path)
    checkpoint.load_weights(net, _current_keys(name, sd), f"torchvision weights {w}")
    return f"{type(w).__name__}.{w.name}:{digest[:8]}", {"url": w.url}


def _check_same_preprocessing(name: str, w: torchvision.models.WeightsEnum) -> None:
    """tv:NAME's card fits its DEFAULT weights; other enums must need the same classes, inputs."""
    default, tf, dtf = _default_weights(name), w.transforms(), _default_weights(name).transforms()
    wanted = (
        len(w.meta.get("categories") or ()),
        int(tf.crop_size[0]),
        tuple(tf.mean),
        tuple(tf.std),
    )
    have = (len(default.meta["categories"]), int(dtf.crop_size[0]), tuple(dtf.mean), tuple(dtf.std))
    if wanted != have:
        raise BenchError(
            f"tv:{name}@{w.name} needs {wanted[0]} classes and {wanted[1]}-px inputs with mean "
            f"{wanted[2]} and std {wanted[3]}, but tv:{name} is set up for its DEFAULT weights "
            f"{default.name} ({have[0]} classes, {have[1]} px, mean {have[2]}, std {have[3]})"
        )


def _current_keys(name: str, sd: dict) -> dict:
    """DenseNet files keep pre-PyTorch-0.4 names (`norm.1`); torchvision renames them on load."""
    if not name.startswith("densenet"):
        return sd
    import re

    old = re.compile(
        r"^(.*denselayer\d+\.(?:norm|relu|conv))\.((?:[12])\.(?:weight|bias|running_mean|running_var))$"
    )
    return {(f"{m.group(1)}{m.group(2)}" if (m := old.match(k)) else k): v for k, v in sd.items()}
