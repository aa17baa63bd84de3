"""The model contract and MGNet's architecture as described in the reference."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from bench import models  # noqa: F401
from bench.core.registry import MODELS
from bench.models.base import BenchModel, as_bench_model, true_gradient
from bench.models.glimpse import glimpse_side, take_glimpse
from bench.models.mgnet import MGNet


def build(name: str, seed: int = 0) -> BenchModel:
    torch.manual_seed(seed)
    card = MODELS.get(name)
    return as_bench_model(card.build(), card.mean, card.std).eval()


@pytest.mark.parametrize("name", MODELS.names("*_tiny") + ["mgnet_small"])
def test_contract_exits_forward_and_views_agree(name: str) -> None:
    m = build(name)
    x = torch.rand(3, 3, 64, 64)
    with torch.no_grad():
        ex = m.exits(x)
        assert ex.logits.shape == (m.n_exits, 3, 10)
        assert torch.equal(ex.logits[-1], m(x))
        for t in range(1, m.n_exits + 1):
            assert torch.allclose(m.at_exit(t)(x), ex.logits[t - 1], atol=1e-6)
        assert torch.equal(m(x), m(x)), "eval forward must be deterministic"


def test_exit_out_of_range_is_rejected() -> None:
    with pytest.raises(ValueError, match="exit 5"):
        build("mgnet_tiny").at_exit(5)


def test_normalization_happens_inside_the_model() -> None:
    m = build("resnet_tiny")
    x = torch.rand(2, 3, 64, 64)
    with torch.no_grad():
        expected = m.net(
            (x - torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1))
            / torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1)
        )
        assert torch.allclose(m(x), expected)


def test_glimpse_side_and_identity_glimpse() -> None:
    assert (
        glimpse_side(224, 2.33) == 96
        and glimpse_side(224, 1.0) == 224
        and glimpse_side(64, 2.33) == 27
    )
    x = torch.rand(2, 3, 224, 224)
    g = take_glimpse(x, torch.tensor([[1.0, 0.0, 0.0]] * 2), 224)
    assert (g - x).abs().max() < 1e-4  # scale 1.0 reproduces the image (reference: 1.3e-4)


def test_glimpse_window_is_the_box_it_claims() -> None:
    x = torch.arange(64.0).repeat(64, 1)[None, None].repeat(1, 3, 1, 1)  # value = column index
    g = take_glimpse(x, torch.tensor([[0.5, 0.5, 0.0]]), 33)
    # window u±s = [0, 1] in normalized coordinates -> columns 31.5 .. 63 (align_corners=True)
    assert torch.allclose(g[0, 0, 0, 0], torch.tensor(31.5)) and torch.allclose(
        g[0, 0, 0, -1], torch.tensor(63.0)
    )


def test_tight_crop_keeps_windows_inside_and_in_scale_range() -> None:
    m = build("mgnet_small")
    with torch.no_grad():
        boxes = m.exits(torch.rand(16, 3, 64, 64)).boxes
    assert boxes is not None and boxes.shape == (4, 16, 4)
    assert torch.allclose(boxes[0], torch.tensor([0.0, 0.0, 1.0, 1.0]).expand(16, 4))
    later = boxes[1:]
    assert (later >= -1e-6).all() and (later <= 1 + 1e-6).all()
    side = later[..., 2] - later[..., 0]
    assert (side >= 0.2 - 1e-6).all() and (side <= 0.5 + 1e-6).all()


def test_fusion_with_last_query_equals_full_self_attention() -> None:
    m = build("mgnet_small")
    tokens = torch.randn(3, 5, 131)
    full = m.feat_fusion.mha(tokens, tokens, tokens, need_weights=False)[0]
    expected = F.relu(m.feat_fusion.norm(full))[-1]
    assert torch.allclose(m.feat_fusion(tokens), expected, atol=1e-5)


def test_rescaler_scales_localization_gradient_by_s_and_can_be_switched_off() -> None:
    # Two glimpses: the localization net runs once, so its weight gradient is exactly s x the true
    # one (with more glimpses, paths through several rescalers scale by s^k).
    from bench.models.mgnet import MGNetConfig
    from bench.models.resnet import backbone

    torch.manual_seed(0)
    net, dim = backbone("resnet_tiny")
    m = MGNet(net, dim, 10, 64, MGNetConfig(n_iter=2), (0.5,) * 3, (0.25,) * 3).eval()
    assert m.cfg.grad_scale == 0.02
    x, y = torch.rand(4, 3, 64, 64), torch.tensor([0, 1, 2, 3])

    def loc_grad() -> torch.Tensor:
        m.zero_grad()
        F.cross_entropy(m(x), y).backward()
        return m.loc_network.fc.weight.grad.clone()

    scaled = loc_grad()
    with true_gradient(m):
        # the rescaler's effect alone (true_gradient also lifts this stop)
        m.affine_stop.enabled = True
        true = loc_grad()
    assert torch.allclose(scaled, 0.02 * true, rtol=1e-4, atol=1e-9)
    assert true.abs().sum() > 0
    assert m.loc_network.grad_factor.enabled, "true_gradient must restore the rescaler"


def test_true_gradient_also_follows_the_glimpse_position_in_the_tokens() -> None:
    # The official model detaches a_t where it enters the fusion tokens (a training choice); the
    # function is the same, so a white-box attack must differentiate through that copy too.
    m = build("mgnet_tiny")
    x, y = torch.rand(4, 3, 64, 64), torch.tensor([0, 1, 2, 3])

    def input_grad(stop: bool) -> tuple[torch.Tensor, torch.Tensor]:
        xg = x.clone().requires_grad_(True)
        with true_gradient(m):
            m.affine_stop.enabled = stop
            logits = m.at_exit(4)(xg)
        (g,) = torch.autograd.grad(F.cross_entropy(logits, y), xg)
        return logits.detach(), g

    (out_stop, g_stop), (out_true, g_true) = input_grad(True), input_grad(False)
    assert torch.equal(out_stop, out_true)  # same outputs
    assert not torch.allclose(g_stop, g_true)  # another gradient
    assert m.affine_stop.enabled, "true_gradient must restore the stop"
    xg = x.clone().requires_grad_(True)
    with true_gradient(m):
        assert not m.affine_stop.enabled
        (g,) = torch.autograd.grad(F.cross_entropy(m.at_exit(4)(xg), y), xg)
    assert torch.equal(g, g_true)


def test_gradient_shapers_have_one_definition_of_active() -> None:
    """`active` decides both what true_gradient lifts and whether the checks compare gradients, for
    MGNet's shapers and for a user's own GradShaper."""
    from bench.evaluation.model_checks import model_checks
    from bench.models.base import Classifier, GradRescale, GradShaper, GradStop, gradient_shapers

    assert not GradRescale(1.0).active and GradRescale(0.02).active
    assert GradStop().active and not GradStop(False).active

    class Negate(GradShaper):  # a user's shaper: flips the gradient while enabled
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return GradRescale(-1.0)(x) if self.active else x

    class Net(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.shape = Negate()

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return torch.stack([x[:, 0].mean((1, 2)), self.shape(x[:, 1].mean((1, 2)))], 1)

    m = Classifier(Net(), None, None)
    assert [type(s) for s in gradient_shapers(m)] == [Negate]
    with true_gradient(m):
        assert not any(s.active for s in gradient_shapers(m))
    assert gradient_shapers(m)[0].active, "true_gradient must restore the user's shaper"
    x, y = torch.rand(4, 3, 8, 8), torch.tensor([0, 1, 0, 1])
    res = {c[1]: c for c in model_checks(m, x, y)}
    assert res["rescaler_effect"][3] < 0.99
    m.net.shape.enabled = False  # an inactive shaper: nothing to compare
    assert "rescaler_effect" not in {c[1] for c in model_checks(m, x, y)}


def test_basic_block_is_torchvisions(monkeypatch: pytest.MonkeyPatch) -> None:
    """The small ResNets' block equals torchvision's: same seeded weights and key names, same
    outputs and gradients bit for bit (checkpoints and trained weights carry over)."""
    from torchvision.models.resnet import BasicBlock as Reference

    from bench.models import resnet

    def pair(stride: int, planes: int) -> tuple[nn.Module, nn.Module]:
        nets = []
        for block in (resnet.BasicBlock, Reference):
            torch.manual_seed(0)
            down = (
                nn.Sequential(nn.Conv2d(8, planes, 1, stride, bias=False), nn.BatchNorm2d(planes))
                if stride != 1 or planes != 8
                else None
            )
            nets.append(block(8, planes, stride, down))
        return nets[0], nets[1]

    x = torch.randn(3, 8, 9, 9)
    for stride, planes in ((1, 8), (2, 16)):
        ours, ref = pair(stride, planes)
        a, b = ours.state_dict(), ref.state_dict()
        assert list(a) == list(b) and all(torch.equal(a[k], b[k]) for k in a)
        for mode in (True, False):
            ours.train(mode), ref.train(mode)
            xa, xb = x.clone().requires_grad_(True), x.clone().requires_grad_(True)
            ya, yb = ours(xa), ref(xb)
            assert torch.equal(ya, yb)
            ya.square().sum().backward(), yb.square().sum().backward()
            assert torch.equal(xa.grad, xb.grad) and torch.equal(
                ours.conv1.weight.grad, ref.conv1.weight.grad
            )
    torch.manual_seed(1)
    ours_net = resnet.resnet("resnet_small", 10).state_dict()
    monkeypatch.setattr(resnet, "BasicBlock", Reference)
    torch.manual_seed(1)
    ref_net = resnet.resnet("resnet_small", 10).state_dict()
    assert list(ours_net) == list(ref_net) and all(
        torch.equal(ours_net[k], ref_net[k]) for k in ours_net
    )


def test_the_harness_starts_without_importing_torchvision() -> None:
    """The default models never import torchvision, whose import costs seconds per process."""
    import subprocess
    import sys

    code = (
        "import sys, bench.cli, bench.evaluation.runner, bench.train.loop, bench.models; "
        "print('torchvision' in sys.modules)"
    )
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert res.stdout.strip() == "False", res.stderr[-2000:]


def test_train_loss_is_the_mgnet_objective() -> None:
    m = build("mgnet_tiny")
    x, y = torch.rand(4, 3, 64, 64), torch.tensor([0, 1, 2, 3])
    logits, _, feats = m._run(x, 4)
    ce = torch.stack([F.cross_entropy(lg, y) for lg in logits]).mean()
    aux = torch.stack([F.cross_entropy(m.glimpse_fc.fc(h), y) for h in feats[1:]]).mean()
    assert torch.allclose(m.train_loss(x, y), 0.4 * ce + 0.6 * aux)
    base = build("mgbase_tiny")
    assert base.glimpse_fc is None and base.n_exits == 1
    assert torch.allclose(base.train_loss(x, y), F.cross_entropy(base(x), y))


@pytest.mark.parametrize(
    "name,total_m,inference_m", [("mgnet_r18", 12.345, 12.294), ("mgbase_r18", 12.294, 12.294)]
)
def test_parameter_counts_match_the_official_model(
    name: str, total_m: float, inference_m: float
) -> None:
    from bench.cost.flops import inference_params

    m = build(name)
    assert round(sum(p.numel() for p in m.parameters()) / 1e6, 3) == total_m
    assert round(inference_params(m) / 1e6, 3) == inference_m


# sha256 (first 16 hex digits) of the "key shape" lines of each state dict, in order, equal to the
# official model definition's (github.com/siahuat0727/MGNet at 1ec4149, built with the README's
# flags; checked 2026-11-29): any renamed, reordered or reshaped tensor breaks the import of
# official checkpoints.
OFFICIAL_KEYS = {
    "mgnet_r18": (132, "4a2d558aa214cf57"),
    "mgbase_r18": (130, "b8ef0b622326e091"),
    "mgnet_r50": (330, "d337341241f65857"),
    "mgbase_r50": (328, "8b12f16aad07ec2e"),
}


@pytest.mark.parametrize("name", sorted(OFFICIAL_KEYS))
def test_state_dict_keys_and_shapes_are_the_official_models(name: str) -> None:
    import hashlib

    sd = build(name).state_dict()
    text = "\n".join(f"{k} {tuple(v.shape)}" for k, v in sd.items())
    assert (len(sd), hashlib.sha256(text.encode()).hexdigest()[:16]) == OFFICIAL_KEYS[name]


def test_linear_layers_start_as_the_official_ones() -> None:
    """Exit, auxiliary, localization heads: Kaiming-normal weights (std √(2/fan_in)), zero bias."""
    torch.manual_seed(0)
    m = build("mgnet_r18")
    for fc in (m.global_fc.fc, m.glimpse_fc.fc, m.loc_network.fc):
        assert torch.count_nonzero(fc.bias) == 0
    for fc in (m.global_fc.fc, m.glimpse_fc.fc):  # 100 x 515 and 100 x 512 weights: std within 2 %
        assert abs(fc.weight.std().item() * (fc.in_features / 2) ** 0.5 - 1) < 0.02


def test_official_submodule_names_and_key_count() -> None:
    keys = list(build("mgnet_r18").state_dict())
    assert len(keys) == 132 and len(list(build("mgbase_r18").state_dict())) == 130
    for k in (
        "feat_fusion.mha.in_proj_weight",
        "feat_fusion.norm.weight",
        "loc_network.fc.weight",
        "global_fc.fc.weight",
        "glimpse_fc.fc.weight",
        "backbone.layer4.1.bn2.running_var",
    ):
        assert k in keys
    assert build("mgnet_r18").state_dict()["feat_fusion.mha.in_proj_weight"].shape == (1545, 515)
