"""`timm:NAME[@FILE]`: pretrained timm models (Hugging Face cache; ImageNet-1k -> ImageNet100)."""

from __future__ import annotations

from pathlib import Path

from torch import nn

from bench.core.card import ModelCard
from bench.core.errors import BenchError, unknown
from bench.load import checkpoint
from bench.models.sources.hub_file import hub_cache_path, load_file, verify_hf_file, verify_hub_file
from bench.models.sources.imagenet100_head import bench_classes, for_imagenet100


def _timm():  # type: ignore[no-untyped-def]
    """timm, imported without its torch.jit deprecation warnings."""
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        import timm
    return timm


HF_FILES = ("model.safetensors", "pytorch_model.bin")  # what timm looks for in a hub repo, in order


def _cfg(name: str) -> dict:
    """The pretrained config timm uses for `name` (`arch` means its default tag)."""
    timm = _timm()
    from timm.models import get_pretrained_cfg

    if not timm.is_model(name):
        raise unknown("timm model", name, timm.list_models())
    try:
        cfg = get_pretrained_cfg(name)
    except RuntimeError as e:  # an existing architecture with an unknown tag
        raise BenchError(
            f"timm:{name}: {e} Known: {', '.join(timm.list_pretrained(name.split('.')[0] + '.*'))}"
        ) from None
    if cfg is None:
        raise BenchError(
            f"timm:{name} has no pretrained configuration (classes, input size, normalization)"
        )
    return cfg.to_dict()


def card(target: str, name: str) -> ModelCard:
    """Card of a timm model: classes, input size and normalization from its pretrained config."""
    timm = _timm()

    cfg = _cfg(name)
    classes = int(cfg.get("num_classes", 1000))
    if classes < 2:  # MAE, FCMAE and other pretraining weights: features, not logits
        raise BenchError(
            f"timm:{name} holds feature-only weights (num_classes {classes}): it has no classifier "
            "to evaluate; choose a classification tag (`timm.list_pretrained`)"
        )
    size = int(cfg["input_size"][-1])
    return ModelCard(
        name=target,
        family="timm",
        num_classes=bench_classes(classes),
        input_size=size,
        build=lambda: for_imagenet100(timm.create_model(name, pretrained=False), classes),
        mean=tuple(cfg["mean"]),
        std=tuple(cfg["std"]),
        source="timm",
        data="imagenet100" if classes == 1000 else "",
        description=f"timm {name}",
    )


def _cached_file(name: str) -> tuple[Path, str] | None:
    """The pretrained file timm would load and its sha256 (checked), if already in a local cache."""
    import huggingface_hub

    cfg = _cfg(name)
    hub_id = cfg.get("hf_hub_id")
    if hub_id:
        repo, _, rev = hub_id.partition("@")
        for fname in [cfg["hf_hub_filename"]] if cfg.get("hf_hub_filename") else HF_FILES:
            p = huggingface_hub.try_to_load_from_cache(repo, fname, revision=rev or None)
            if isinstance(p, str):
                return Path(p), verify_hf_file(Path(p))
    elif cfg.get("url") and hub_cache_path(cfg["url"]).is_file():
        return hub_cache_path(cfg["url"]), verify_hub_file(hub_cache_path(cfg["url"]))
    return None


def load(net: nn.Module, name: str, weights: str, cache: Path) -> tuple[str, dict]:
    """Weights from a local file, timm's pretrained file from the cache, or a download by timm."""
    if weights:
        return load_file(net, Path(weights))
    found = _cached_file(name)
    try:
        loaded = _timm().create_model(
            name, pretrained=True, pretrained_cfg_overlay={"file": str(found[0])} if found else {}
        )
    except Exception as e:  # noqa: BLE001  (hub, network and format errors of several libraries)
        raise BenchError(
            f"pretrained weights of timm:{name} are not in the local cache and could not be "
            f"downloaded: {type(e).__name__}: {e}"
        ) from None
    found = found or _cached_file(name)  # after a download
    checkpoint.load_weights(net, loaded.state_dict(), f"timm's pretrained weights of {name}")
    return f"timm:{found[1][:12] if found else 'downloaded'}", {
        "file": str(found[0]) if found else ""
    }
