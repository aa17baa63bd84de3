"""Folding batch norms: same logits and input gradients, only where the graph allows, on a copy."""

from __future__ import annotations

import copy
import logging

import torch
from torch import nn

from bench.fast.fold import fold_batchnorm
from bench.fast.runtime_copy import runtime_copy
from bench.models.base import Classifier


def _bn(c: int, seed: int) -> nn.BatchNorm2d:
    g = torch.Generator().manual_seed(seed)
    bn = nn.BatchNorm2d(c)
    bn.running_mean = torch.randn(c, generator=g)
    bn.running_var = torch.rand(c, generator=g) + 0.5
    bn.weight.data = torch.randn(c, generator=g)
    bn.bias.data = torch.randn(c, generator=g)
    return bn.eval()


def _n_bn(m: nn.Module) -> int:
    return sum(isinstance(x, nn.BatchNorm2d) for x in m.modules())


class Shared(nn.Module):
    """One conv+BN pair applied to two crops, as MGNet's backbone is applied to every glimpse."""

    def __init__(self) -> None:
        super().__init__()
        self.conv, self.bn = nn.Conv2d(3, 4, 3, padding=1), _bn(4, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.bn(self.conv(x[..., :4, :4])) + self.bn(self.conv(x[..., 4:, 4:]))


class Residual(nn.Module):
    """The conv output also feeds the skip: folding the BN would change the skip."""

    def __init__(self) -> None:
        super().__init__()
        self.conv, self.bn = nn.Conv2d(3, 3, 3, padding=1), _bn(3, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.conv(x)
        return self.bn(h) + h


class Untraceable(nn.Module):
    """Python branching on data stops fx at the top; the child below is still folded."""

    def __init__(self) -> None:
        super().__init__()
        self.body = nn.Sequential(nn.Conv2d(3, 4, 3), _bn(4, 3), nn.ReLU())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x) if float(x.mean()) > -1 else -self.body(x)


class Sneaky(nn.Module):
    """Also calls the child's conv outside its own forward, so fx on the child cannot see it."""

    def __init__(self) -> None:
        super().__init__()
        self.body = nn.Sequential(nn.Conv2d(3, 4, 3), _bn(4, 4))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.body(x) + self.body[0](x)
        return out.flatten(1) if float(x.mean()) > -1 else out


def _grad(m: nn.Module, x: torch.Tensor) -> torch.Tensor:
    x = x.clone().requires_grad_(True)
    m(x).square().sum().backward()
    return x.grad


def test_folds_conv_bn_chains_with_same_outputs_and_gradients() -> None:
    net = nn.Sequential(
        nn.Conv2d(3, 8, 3, bias=False), _bn(8, 0), nn.ReLU(), nn.Conv2d(8, 4, 1), _bn(4, 5)
    ).eval()
    ref = Classifier(net, (0.5, 0.5, 0.5), (0.2, 0.2, 0.2)).eval()
    folded = copy.deepcopy(ref)
    assert fold_batchnorm(folded) == 2 and _n_bn(folded) == 0
    x = torch.rand(5, 3, 9, 9)
    torch.testing.assert_close(folded(x), ref(x), rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(_grad(folded, x), _grad(ref, x), rtol=1e-4, atol=1e-5)


def test_shared_pair_is_folded_once_and_still_matches() -> None:
    ref = Shared().eval()
    m = copy.deepcopy(ref)
    assert fold_batchnorm(m) == 1 and _n_bn(m) == 0
    x = torch.rand(2, 3, 8, 8)
    torch.testing.assert_close(m(x), ref(x), rtol=1e-5, atol=1e-5)


def test_conv_output_used_elsewhere_is_not_folded() -> None:
    m = Residual().eval()
    assert fold_batchnorm(m) == 0 and _n_bn(m) == 1


def test_bn_after_a_non_conv_and_bn_in_training_mode_are_left() -> None:
    after_relu = nn.Sequential(nn.Conv2d(3, 3, 1), nn.ReLU(), _bn(3, 0)).eval()
    assert fold_batchnorm(after_relu) == 0
    training = nn.Sequential(nn.Conv2d(3, 3, 1), _bn(3, 0)).train()
    assert fold_batchnorm(training) == 0 and _n_bn(training) == 1


def test_untraceable_parent_is_searched_child_by_child() -> None:
    ref = Untraceable().eval()
    m = copy.deepcopy(ref)
    assert fold_batchnorm(m) == 1
    x = torch.rand(2, 3, 6, 6)
    torch.testing.assert_close(m(x), ref(x), rtol=1e-5, atol=1e-5)


def test_runtime_copy_folds_a_copy_and_keeps_the_loaded_model() -> None:
    net = nn.Sequential(
        nn.Conv2d(3, 8, 3),
        _bn(8, 0),
        nn.ReLU(),
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(),
        nn.Linear(8, 5),
    )
    model = Classifier(net, None, None).eval()
    run = runtime_copy(model, 16)
    assert _n_bn(model) == 1 and _n_bn(run) == 0
    assert run.net[0].weight.is_contiguous(memory_format=torch.channels_last)
    x = torch.rand(3, 3, 16, 16)
    torch.testing.assert_close(run(x), model(x), rtol=1e-5, atol=1e-5)


def test_runtime_copy_keeps_bn_when_folding_would_change_the_logits(caplog) -> None:  # type: ignore[no-untyped-def]
    model = Sneaky().eval()
    with caplog.at_level(logging.WARNING, logger="bench.fast.runtime_copy"):
        run = runtime_copy(model, 8)
    assert _n_bn(run) == 1
    assert "evaluating it unfolded" in caplog.text
    x = torch.rand(2, 3, 8, 8)
    torch.testing.assert_close(run(x), model(x))


class LayoutBound(nn.Module):
    """Stands in for a model whose rounding the channels_last layout moves past the tolerance
    (MGNet's glimpse recurrence amplifies it): its output jumps when its weight is channels_last."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        jump = 10.0 if self.conv.weight.is_contiguous(memory_format=torch.channels_last) else 0.0
        return self.conv(x).flatten(1) + jump


def test_runtime_copy_checks_the_copy_as_it_runs_and_falls_back_to_the_model_as_loaded(
    caplog,
) -> None:  # type: ignore[no-untyped-def]
    model = LayoutBound().eval()
    with caplog.at_level(logging.WARNING, logger="bench.fast.runtime_copy"):
        run = runtime_copy(model, 8)
    assert "the channels_last layout (" in caplog.text and "evaluating it as loaded" in caplog.text
    assert run is not model and not run.conv.weight.is_contiguous(memory_format=torch.channels_last)
    x = torch.rand(2, 3, 8, 8)
    torch.testing.assert_close(run(x), model(x))
