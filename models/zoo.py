"""The registered models: MGNet, the official one-glimpse baseline and plain ResNets."""

from __future__ import annotations

from collections.abc import Callable

from bench.core.card import register_model
from bench.models.base import BenchModel, Classifier
from bench.models.mgnet import MGNet, MGNetConfig
from bench.models.resnet import IMAGENET_MEAN, IMAGENET_STD, backbone, resnet

# (suffix, backbone, data set, classes, input size, hidden)
_SETTINGS = [
    ("small", "resnet_small", "cluttered_fmnist", 10, 64, False),
    ("r18", "resnet18", "imagenet100", 100, 224, False),
    ("r50", "resnet50", "imagenet100", 100, 224, False),
    ("tiny", "resnet_tiny", "", 10, 64, True),
]

MGNET = MGNetConfig()  # the headline model: 4 glimpses at 2.33x downsampling, s = 0.02, α = 0.6
MGBASE = MGNetConfig(n_iter=1, scale=1.0, grad_scale=1.0, alpha=0.0)  # the official "baseline"


def _mgnet(arch: str, classes: int, size: int, cfg: MGNetConfig) -> Callable[[], BenchModel]:
    def build() -> BenchModel:
        net, dim = backbone(arch)
        return MGNet(net, dim, classes, size, cfg, IMAGENET_MEAN, IMAGENET_STD)

    return build


def _resnet(arch: str, classes: int) -> Callable[[], BenchModel]:
    def build() -> BenchModel:
        return Classifier(resnet(arch, classes), IMAGENET_MEAN, IMAGENET_STD)

    return build


for _suffix, _arch, _data, _k, _size, _hidden in _SETTINGS:
    _common = dict(
        num_classes=_k,
        input_size=_size,
        mean=None,
        std=None,
        source="bench",
        data=_data,
        hidden=_hidden,
    )
    register_model(
        f"mgnet_{_suffix}",
        family="mgnet",
        exits=(1, 2, 3, 4),
        description=f"MGNet, {_arch} backbone, 4 glimpses at {_size}//2.33 px",
        **_common,
    )(_mgnet(_arch, _k, _size, MGNET))
    register_model(
        f"mgbase_{_suffix}",
        family="mgbase",
        description=f"official MGNet baseline: one {_size}-px glimpse, {_arch}",
        **_common,
    )(_mgnet(_arch, _k, _size, MGBASE))
    register_model(_arch, family="resnet", description=f"plain {_arch}", **_common)(
        _resnet(_arch, _k)
    )
