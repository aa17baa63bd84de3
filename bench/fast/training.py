"""The speed paths of a training run, as one hook `bench train` hands to the training loop."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import torch

from bench.fast import small_map_grad
from bench.fast.layout import training_layout


@contextlib.contextmanager
def speedups(model: torch.nn.Module, device: torch.device) -> Iterator[None]:
    """channels_last where the backend gets its weight gradients right, and the small-map weight
    gradient; the usual NCHW weights again afterwards, for the checkpoint.

    Enter it before the optimiser and DistributedDataParallel are made: DDP buckets gradients by the
    parameters' strides.
    """
    training_layout(model, device)
    try:
        # tiny late feature maps: a faster weight gradient on the CPU
        with small_map_grad.enabled(model):
            yield
    finally:
        model.to(memory_format=torch.contiguous_format)
