"""Small-map convs' weight gradient as a matmul: oneDNN's gradients, same keys, restored classes."""

from __future__ import annotations

import copy

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from bench import models  # noqa: F401  (registers the models)
from bench.core.registry import MODELS
from bench.fast import small_map_grad


@pytest.mark.parametrize("channels_last", [False, True])
@pytest.mark.parametrize(
    "c_in,side,c_out,k,stride,pad,bias",
    [
        (8, 1, 16, 3, 1, 1, False),  # a 3x3 on a 1x1 map: only the centre tap sees data
        (8, 2, 8, 3, 1, 1, True),
        (4, 4, 8, 3, 2, 1, False),  # strided, 4x4 -> 2x2
        (8, 2, 16, 1, 2, 0, False),  # a strided 1x1 (ResNet downsample)
        (3, 3, 5, 2, 1, 0, True),  # even kernel, no padding
    ],
)
def test_gradients_equal_onednn(
    channels_last: bool, c_in: int, side: int, c_out: int, k: int, stride: int, pad: int, bias: bool
) -> None:
    torch.manual_seed(0)
    conv = nn.Conv2d(c_in, c_out, k, stride, pad, bias=bias)
    x = torch.randn(6, c_in, side, side)
    if channels_last:
        conv, x = (
            conv.to(memory_format=torch.channels_last),
            x.contiguous(memory_format=torch.channels_last),
        )
    fast = copy.deepcopy(conv)
    grads = []
    for m in (conv, fast):
        xg = x.clone().requires_grad_()
        with small_map_grad.enabled(fast) as n:
            out = m(xg)
            assert n == 1 and out.shape[-1] * out.shape[-2] <= small_map_grad.MAX_OUTPUT_PIXELS
            assert (type(out.grad_fn).__name__ == "ConvolutionBackward0") == (m is conv)
            out.mul(torch.linspace(-1, 1, out.numel()).view_as(out)).sum().backward()
        grads.append([xg.grad] + [p.grad for p in m.parameters()])
        torch.testing.assert_close(out, F.conv2d(x, conv.weight, conv.bias, stride, pad))
    for a, b in zip(*grads):
        torch.testing.assert_close(b, a, rtol=1e-5, atol=1e-5)
    assert fast.weight.grad.stride() == fast.weight.stride(), (
        "weight gradients keep the weight's layout (DDP)"
    )


def test_large_outputs_and_frozen_weights_take_the_usual_path() -> None:
    conv = nn.Conv2d(3, 4, 3, padding=1)
    with small_map_grad.enabled(conv):
        y = conv(torch.rand(2, 3, 8, 8))
        assert type(y.grad_fn).__name__ == "ConvolutionBackward0"
        y = conv(torch.rand(2, 3, 2, 2))
        assert type(y.grad_fn).__name__ != "ConvolutionBackward0"
        conv.weight.requires_grad_(False)
        conv.bias.requires_grad_(False)
        assert (
            type(conv(torch.rand(2, 3, 2, 2, requires_grad=True)).grad_fn).__name__
            == "ConvolutionBackward0"
        )


def test_enabled_keeps_keys_and_restores_classes() -> None:
    model = MODELS.get("mgnet_small").build()
    keys = list(model.state_dict())
    grouped = nn.Conv2d(4, 4, 3, groups=2)
    model.add_module("extra", grouped)
    with small_map_grad.enabled(model) as n:
        assert (
            n
            == sum(1 for m in model.modules() if isinstance(m, small_map_grad.SmallMapConv2d))
            > 10
        )
        assert type(grouped) is nn.Conv2d, "grouped convolutions keep oneDNN's gradient"
        assert list(model.state_dict())[: len(keys)] == keys
    assert not any(isinstance(m, small_map_grad.SmallMapConv2d) for m in model.modules())


@pytest.mark.parametrize("name", ["mgbase_small", "resnet_small"])
def test_a_training_step_has_the_same_gradients(name: str) -> None:
    torch.manual_seed(0)
    ref = MODELS.get(name).build().train()
    fast = copy.deepcopy(ref)
    x, y = torch.rand(8, 3, 64, 64), torch.randint(0, 10, (8,))
    ref.train_loss(x, y).backward()
    with small_map_grad.enabled(fast) as n:
        assert n > 0
        fast.train_loss(x, y).backward()
    for (k, a), b in zip(ref.named_parameters(), fast.parameters()):
        if a.grad is not None:
            torch.testing.assert_close(b.grad, a.grad, rtol=1e-3, atol=1e-6, msg=k)
