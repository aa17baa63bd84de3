"""ResNet backbones and baselines: torchvision's, and a narrow one for the CPU default."""

from __future__ import annotations

from collections.abc import Sequence

from torch import Tensor, nn

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


class BasicBlock(nn.Module):
    """torchvision's ResNet BasicBlock without importing torchvision (about 2.5 s per process here).

    Same modules, key names, initialisation order and forward (a parity test checks it).
    """

    expansion = 1

    def __init__(
        self, inplanes: int, planes: int, stride: int = 1, downsample: nn.Module | None = None
    ) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(inplanes, planes, 3, stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = nn.Conv2d(planes, planes, 3, 1, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.downsample = downsample
        self.stride = stride

    def forward(self, x: Tensor) -> Tensor:
        out = self.bn2(self.conv2(self.relu(self.bn1(self.conv1(x)))))
        out += x if self.downsample is None else self.downsample(x)
        return self.relu(out)


class SmallResNet(nn.Module):
    """torchvision's ResNet-18 layout and key names at a chosen width (the CPU default backbone)."""

    def __init__(
        self,
        widths: Sequence[int] = (16, 32, 64, 128),
        blocks: Sequence[int] = (2, 2, 2, 2),
        num_classes: int = 1000,
    ) -> None:
        super().__init__()
        self.inplanes = widths[0]
        self.conv1 = nn.Conv2d(3, widths[0], kernel_size=7, stride=2, padding=3, bias=False)
        self.bn1 = nn.BatchNorm2d(widths[0])
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(kernel_size=3, stride=2, padding=1)
        self.layer1 = self._layer(widths[0], blocks[0], 1)
        self.layer2 = self._layer(widths[1], blocks[1], 2)
        self.layer3 = self._layer(widths[2], blocks[2], 2)
        self.layer4 = self._layer(widths[3], blocks[3], 2)
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(widths[3], num_classes)
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)

    def _layer(self, planes: int, n: int, stride: int) -> nn.Sequential:
        down = None
        if stride != 1 or self.inplanes != planes:
            down = nn.Sequential(
                nn.Conv2d(self.inplanes, planes, 1, stride, bias=False), nn.BatchNorm2d(planes)
            )
        layers = [BasicBlock(self.inplanes, planes, stride, down)]
        self.inplanes = planes
        layers += [BasicBlock(planes, planes) for _ in range(1, n)]
        return nn.Sequential(*layers)

    def forward(self, x: Tensor) -> Tensor:
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        return self.fc(self.avgpool(x).flatten(1))


def resnet(arch: str, num_classes: int) -> nn.Module:
    """A random-init ResNet by name: resnet18, resnet50 (torchvision) or resnet_small/tiny."""
    if arch in ("resnet18", "resnet50"):
        import torchvision

        return getattr(torchvision.models, arch)(weights=None, num_classes=num_classes)
    if arch == "resnet_small":
        return SmallResNet((16, 32, 64, 128), (2, 2, 2, 2), num_classes)
    if arch == "resnet_tiny":
        return SmallResNet((4, 8, 8, 8), (1, 1, 1, 1), num_classes)
    raise ValueError(f"unknown ResNet {arch!r}")


def backbone(arch: str) -> tuple[nn.Module, int]:
    """A ResNet with `fc` replaced by the identity, and the width of its pooled feature."""
    net = resnet(arch, num_classes=10)
    dim = net.fc.in_features
    net.fc = nn.Identity()
    return net, dim
