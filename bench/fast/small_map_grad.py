"""Weight gradients of convolutions with tiny outputs as one matrix product, for training on the
CPU.

oneDNN computes the weight gradient of a convolution whose output is 1x1 or 2x2 (the last stages of
a ResNet on MGNet's 27-px glimpses) slowly: 3.8 ms for a 128-to-128 3x3 convolution at batch 128 on
the 2-core CPU, where the same sum as one (O, N·L) x (N·L, C·k·k) matrix product over the input's
patches takes about 0.6 ms. Here that product replaces it, on convolutions with at most
MAX_OUTPUT_PIXELS output pixels per image; the input gradient and the forward pass stay oneDNN's. A
training step of `mgnet_small` gets about 1.15x faster; the 64-px baselines, whose smallest output
is 2x2, take it on their last stage but are no faster. The gradients equal oneDNN's up to float
rounding (tests/test_small_map_grad.py).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.autograd.function import once_differentiable

MAX_OUTPUT_PIXELS = 4


class _Conv(torch.autograd.Function):
    """conv2d (stride, padding; no dilation or groups) whose weight gradient is one matmul."""

    @staticmethod
    def forward(
        ctx: Any,
        x: Tensor,
        weight: Tensor,
        bias: Tensor | None,
        stride: tuple[int, int],
        padding: tuple[int, int],
    ) -> Tensor:
        ctx.save_for_backward(x, weight)
        ctx.stride, ctx.padding, ctx.has_bias = stride, padding, bias is not None
        return F.conv2d(x, weight, bias, stride, padding)

    @staticmethod
    @once_differentiable
    def backward(ctx: Any, grad: Tensor) -> tuple[Tensor | None, ...]:
        x, weight = ctx.saved_tensors
        want_x, want_w, want_b = ctx.needs_input_grad[:3]
        gx = gw = gb = None
        if want_x:
            gx = torch.ops.aten.convolution_backward(
                grad,
                x,
                weight,
                None,
                list(ctx.stride),
                list(ctx.padding),
                [1, 1],
                False,
                [0, 0],
                1,
                [True, False, False],
            )[0]
        if want_w:
            o, c, kh, kw = weight.shape
            (sh, sw), (ph, pw) = ctx.stride, ctx.padding
            n, _, ho, wo = grad.shape
            # (N, C, Ho, Wo, kh, kw)
            patches = F.pad(x, (pw, pw, ph, ph)).unfold(2, kh, sh).unfold(3, kw, sw)
            patches = patches.permute(0, 2, 3, 1, 4, 5).reshape(n * ho * wo, c * kh * kw)
            gw = grad.permute(1, 0, 2, 3).reshape(o, n * ho * wo) @ patches
            # the weight's strides, as DDP expects
            gw = torch.empty_like(weight).copy_(gw.view(o, c, kh, kw))
        if want_b and ctx.has_bias:
            gb = grad.sum((0, 2, 3))
        return gx, gw, gb, None, None


class SmallMapConv2d(nn.Conv2d):
    """A Conv2d using `_Conv`'s weight gradient for outputs of at most MAX_OUTPUT_PIXELS pixels."""

    def _conv_forward(self, x: Tensor, weight: Tensor, bias: Tensor | None) -> Tensor:
        if torch.is_grad_enabled() and weight.requires_grad and x.device.type == "cpu":
            (kh, kw), (sh, sw), (ph, pw) = self.kernel_size, self.stride, self.padding
            pixels = ((x.shape[-2] + 2 * ph - kh) // sh + 1) * (
                (x.shape[-1] + 2 * pw - kw) // sw + 1
            )
            if pixels <= MAX_OUTPUT_PIXELS:
                return _Conv.apply(x, weight, bias, self.stride, self.padding)
        return super()._conv_forward(x, weight, bias)


def _eligible(m: nn.Module) -> bool:
    return (
        type(m) is nn.Conv2d
        and m.groups == 1
        and m.dilation == (1, 1)
        and m.padding_mode == "zeros"
        and isinstance(m.padding, tuple)
    )


@contextlib.contextmanager
def enabled(model: nn.Module) -> Iterator[int]:
    """Train `model`'s plain Conv2d modules with SmallMapConv2d inside the block; yields how many.

    The modules keep their parameters and state-dict keys; their class is restored on exit.
    """
    swapped = [m for m in model.modules() if _eligible(m)]
    for m in swapped:
        m.__class__ = SmallMapConv2d
    try:
        yield len(swapped)
    finally:
        for m in swapped:
            m.__class__ = nn.Conv2d
