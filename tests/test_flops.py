"""FLOP counts against closed forms and against torch's own counter."""

from __future__ import annotations

import pytest
import torch
import torchvision
from torch.utils.flop_counter import FlopCounterMode

from bench import models  # noqa: F401
from bench.core.registry import MODELS
from bench.cost import flops
from bench.models.base import Classifier, true_gradient


def _build(name: str):  # type: ignore[no-untyped-def]
    torch.manual_seed(0)
    return MODELS.get(name).build().eval()


def test_resnet50_at_224_is_4_09_gmacs() -> None:
    m = Classifier(torchvision.models.resnet50(), (0.5,) * 3, (0.5,) * 3).eval()
    c = flops.count(m, 1, 224)
    assert c.gmacs == pytest.approx(4.09, rel=0.01)
    assert c.by_operator["conv"] == 4_087_136_256 and c.params_m == pytest.approx(25.557032)
    assert "aten::max_pool2d" in c.uncounted  # skipped ops are listed, not hidden


def test_mgnet_exit_t_costs_t_glimpses_of_the_backbone_plus_fusion() -> None:
    base = flops.count(_build("mgbase_r18"), 1, 224)  # one 224-px glimpse
    mg = _build("mgnet_r18")
    d = 515
    for t in range(1, 5):
        c = flops.count(mg, t, 224)
        # convolutions: exactly t glimpses at (96/224)^2 of the 224-px cost
        assert c.by_operator["conv"] * 49 == t * 9 * base.by_operator["conv"]
        # attention core: query = newest token, keys/values = t tokens, for each step 1..t
        assert c.by_operator["scaled_dot_product_attention"] == sum(
            2 * d * s for s in range(1, t + 1)
        )
        # linear: K/V projections of all s tokens and Q of one at each step s, out_proj, classifier,
        # loc
        lin = sum((2 * s + 1) * d * d + d * d + d * 100 for s in range(1, t + 1)) + (t - 1) * d * 3
        assert c.by_operator["linear"] == lin
        assert c.by_operator["grid_sampler"] == t * 4 * 3 * 96 * 96
    four = flops.count(mg, 4, 224).gmacs
    assert four == pytest.approx(4 * 9 / 49 * base.by_operator["conv"] / 1e9, rel=0.02)


def test_fvcore_agrees_with_flop_counter_mode_on_conv_and_linear() -> None:
    m = _build("mgnet_small")
    c = flops.count(m, 3, 64)
    x = torch.rand(1, 3, 64, 64)
    with true_gradient(m), FlopCounterMode(display=False) as fc:
        m.at_exit(3)(x)  # grad enabled: attention avoids fused fast paths
    counts = {str(k): v for k, v in fc.get_flop_counts()["Global"].items()}
    conv = counts.get("aten.convolution", 0)
    mm = sum(v for k, v in counts.items() if k in ("aten.addmm", "aten.mm", "aten.bmm"))
    assert conv == 2 * c.by_operator["conv"]
    assert mm == 2 * c.by_operator["linear"]


def test_flop_count_restores_training_flags() -> None:
    m = _build("mgnet_tiny").train()
    m.backbone.bn1.eval()
    flops.count(m, 2, 64)
    assert m.training and not m.backbone.bn1.training
