"""Which convolution kernels a small batch runs on the CPU: PyTorch's own where oneDNN's cost more
than their work.

oneDNN re-lays out a convolution's weights into its blocked format on every call. On a batch of a
few images with small feature maps that copy costs more than the convolution: on the 2-core CPU,
`mgnet_small` (27-px glimpses) runs a forward plus backward at batch 2 in 19 ms with PyTorch's
im2col kernels against 36 ms with oneDNN's, and `resnet_small` at batch 2 in 7.2 against 10.6 ms.
With larger maps oneDNN wins (ResNet-18 at 224 px, batch 2: 165 ms with it, 208 ms without).
AutoAttack's FAB and Square spend most of their time on such batches: the few images still robust
after APGD.

The rule is deterministic, so a run's results do not depend on timings: PyTorch's kernels when the
batch has fewer than 16 images (from 16 on, with oneDNN off, PyTorch picks NNPACK, 5x slower here)
and the batch times the model's largest convolution is at most NATIVE_CONV_MACS
multiply-accumulates. Both kernels compute the same function; logits differ by float rounding only.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Iterator
from dataclasses import dataclass

import torch
from torch import nn

NATIVE_CONV_MACS = 10_000_000
NNPACK_BATCH = 16  # PyTorch's own kernel choice moves to NNPACK at this batch size


@dataclass
class ConvProbe:
    """The largest Conv2d call seen: multiply-accumulates per image (0 before any)."""

    largest: int = 0


@contextlib.contextmanager
def conv_probe(model: nn.Module) -> Iterator[ConvProbe]:
    """Record the largest Conv2d call of `model`'s forward passes in the block, then unhook."""
    probe = ConvProbe()

    def hook(conv: nn.Conv2d) -> torch.utils.hooks.RemovableHandle:
        per_output = (conv.in_channels // conv.groups) * math.prod(conv.kernel_size)

        def record(_m: nn.Module, _i: object, out: torch.Tensor) -> None:
            probe.largest = max(probe.largest, out[0].numel() * per_output)

        return conv.register_forward_hook(record)

    handles = [hook(m) for m in model.modules() if isinstance(m, nn.Conv2d)]
    try:
        yield probe
    finally:
        for h in handles:
            h.remove()


def use_native(n_images: int, conv_macs: int, device: torch.device) -> bool:
    """Whether a batch of n_images should run PyTorch's convolution kernels instead of oneDNN's."""
    return (
        device.type == "cpu"
        and 0 < n_images < NNPACK_BATCH
        and n_images * conv_macs <= NATIVE_CONV_MACS
    )


@contextlib.contextmanager
def small_batch(n_images: int, conv_macs: int, device: torch.device) -> Iterator[bool]:
    """oneDNN convolutions off in the block, backward too, if `use_native` says; restored after."""
    native = use_native(n_images, conv_macs, device)
    before = torch.backends.mkldnn.enabled
    if native:
        torch.backends.mkldnn.enabled = False
    try:
        yield native
    finally:
        torch.backends.mkldnn.enabled = before
