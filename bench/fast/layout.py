"""The channels_last memory layout, for evaluation and for training where the backend computes it
right.

Models run channels_last (NHWC weights; inputs stay NCHW as `to_unit` makes them): cuDNN's fast
layout on CUDA, and on CPU oneDNN's too (2-core CPU, 64 px, batch 256: forward 1.15-1.3x, forward
plus backward 1.05-1.25x for the three default models). Accuracy does not depend on it. Training
runs channels_last too (a training step of the default models 1.15-1.3x faster on 2 CPU cores),
except on a CPU for a model with a strided 1x1 convolution of fewer than 16 input channels: there
oneDNN's weight gradient writes past its workspace (`onednn_nhwc_weight_grad_ok`). Attacks freeze
the weights (`attack_mode`), so evaluation never takes that path.
"""

from __future__ import annotations

import torch


def layout(model: torch.nn.Module) -> torch.nn.Module:
    """The model, made channels_last in place: the faster convolution layout on CUDA and CPU."""
    return model.to(memory_format=torch.channels_last)


def onednn_nhwc_weight_grad_ok(model: torch.nn.Module) -> bool:
    """Whether oneDNN computes this model's weight gradients correctly on NHWC (channels_last)
    tensors.

    Its strided 1x1 convolution, given an NHWC input with fewer input channels than its channel
    block (8 with AVX2, 16 with AVX-512), writes its weight gradient past its workspace: heap
    corruption or a hang (uxlfoundation/oneDNN#6035, open; reproduced with torch 2.14.1 on a 2-core
    AMD EPYC).
    """
    return not any(
        isinstance(m, torch.nn.Conv2d)
        and m.kernel_size == (1, 1)
        and m.stride != (1, 1)
        and m.in_channels // m.groups < 16
        for m in model.modules()
    )


def training_layout(model: torch.nn.Module, device: torch.device) -> bool:
    """Make `model` channels_last for training where the backend gets its weight gradients right; in
    place.

    Returns whether it did; call before wrapping in DistributedDataParallel, which buckets gradients
    by the parameters' strides.
    """
    if device.type == "cpu" and not onednn_nhwc_weight_grad_ok(model):
        return False
    layout(model)
    return True
