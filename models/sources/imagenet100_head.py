"""ImageNet-1k classifiers on ImageNet100: keep logits 0-99, exactly ImageNet100's classes."""

from __future__ import annotations

from torch import Tensor, nn

IMAGENET1K = 1000
IMAGENET100 = 100


class FirstClasses(nn.Module):
    """Logits of the first `k` classes of `net` (its weights stay under `.net`)."""

    def __init__(self, net: nn.Module, k: int = IMAGENET100) -> None:
        super().__init__()
        self.net = net
        self.k = k

    def forward(self, x: Tensor) -> Tensor:
        return self.net(x)[:, : self.k]


def for_imagenet100(net: nn.Module, num_classes: int) -> nn.Module:
    """Wrap ImageNet-1k models so they score ImageNet100; other class counts pass unchanged."""
    return FirstClasses(net) if num_classes == IMAGENET1K else net


def classifier_of(net: nn.Module) -> nn.Module:
    """The library's own network inside `net` (its weights files address it without the wrapper)."""
    return net.net if isinstance(net, FirstClasses) else net


def bench_classes(num_classes: int) -> int:
    """The class count the harness sees for a library model with `num_classes` outputs."""
    return IMAGENET100 if num_classes == IMAGENET1K else num_classes
