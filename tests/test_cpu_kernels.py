"""CPU kernel choice for small batches: the size rule, the flag set and restored, same gradients."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from bench.attacks import AutoAttack
from bench.fast import cpu_kernels

CPU = torch.device("cpu")


def _net() -> nn.Sequential:
    torch.manual_seed(0)
    return nn.Sequential(
        nn.Conv2d(3, 8, 3, padding=1),
        nn.ReLU(),
        nn.Conv2d(8, 8, 3, stride=2, padding=1, groups=4),
        nn.ReLU(),
        nn.Conv2d(8, 4, 1),
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(),
    ).eval()


def test_conv_probe_is_exact() -> None:
    net = _net()
    with cpu_kernels.conv_probe(net) as probe:
        assert probe.largest == 0
        net(torch.rand(5, 3, 10, 10))
    # 8 x 10 x 10 outputs x 3 x 3 x 3 inputs; then 8 x 5 x 5 x (8/4) x 3 x 3 = 3,600; then 4 x 25 x
    # 8 = 800
    assert probe.largest == 8 * 100 * 27
    assert not net[0]._forward_hooks, "the probe's hooks are removed"
    lin = nn.Linear(4, 2)
    with cpu_kernels.conv_probe(lin) as probe:
        lin(torch.rand(1, 4))
    assert probe.largest == 0


def test_rule_picks_small_cpu_batches_only() -> None:
    limit = cpu_kernels.NATIVE_CONV_MACS
    assert cpu_kernels.use_native(2, limit // 2, CPU)
    assert not cpu_kernels.use_native(3, limit // 2, CPU), "more work than the limit"
    assert not cpu_kernels.use_native(cpu_kernels.NNPACK_BATCH, 1, CPU), "PyTorch would pick NNPACK"
    assert not cpu_kernels.use_native(0, 1, CPU)
    assert not cpu_kernels.use_native(1, 1, torch.device("cuda"))


def test_small_batch_sets_and_restores_the_flag() -> None:
    assert torch.backends.mkldnn.enabled
    with cpu_kernels.small_batch(2, 1000, CPU) as native:
        assert native and not torch.backends.mkldnn.enabled
    assert torch.backends.mkldnn.enabled
    with pytest.raises(RuntimeError), cpu_kernels.small_batch(2, 1000, CPU):
        raise RuntimeError("boom")
    assert torch.backends.mkldnn.enabled, "restored after an error"
    with cpu_kernels.small_batch(64, 10**6, CPU) as native:
        assert not native and torch.backends.mkldnn.enabled


@pytest.mark.parametrize("channels_last", [False, True])
def test_both_kernels_give_the_same_logits_and_input_gradients(channels_last: bool) -> None:
    net = _net()
    x = torch.rand(3, 3, 12, 12)
    if channels_last:
        net, x = (
            net.to(memory_format=torch.channels_last),
            x.contiguous(memory_format=torch.channels_last),
        )
    out = []
    for n_macs in (10**9, 1):  # oneDNN, then PyTorch's own kernels
        xg = x.clone().requires_grad_()
        with cpu_kernels.small_batch(len(x), n_macs, CPU):
            logits = net(xg)
            out.append((logits.detach(), torch.autograd.grad(logits.square().sum(), xg)[0]))
    (l0, g0), (l1, g1) = out
    torch.testing.assert_close(l1, l0, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(g1, g0, rtol=1e-5, atol=1e-6)


def test_autoattack_runs_its_small_batches_on_the_chosen_kernels() -> None:
    from bench.evaluation.scoring import small_batch_kernels

    net = _net()
    # without biases the net can be fooled: APGD-T breaks every image, Square never runs
    with torch.no_grad():
        for m in net:
            if isinstance(m, nn.Conv2d):
                m.bias.zero_()
    torch.manual_seed(1)
    x = torch.rand(6, 3, 12, 12)
    with torch.no_grad():
        y = net(x).argmax(1)
    seen: list[bool] = []
    net[0].register_forward_hook(lambda *_: seen.append(torch.backends.mkldnn.enabled))
    # the context the evaluation layer hands AutoAttack's chunks
    kernels = small_batch_kernels(net, x)
    assert (
        not AutoAttack(32 / 255)
        .robust(net, x, y, seed=0, batch_size=3, chunk_context=kernels)
        .any()
    )
    assert False in seen, "the attack chunks (3 images, a tiny model) ran PyTorch's kernels"
    assert seen[0], "the set-up forward passes ran the default ones"
    assert torch.backends.mkldnn.enabled
