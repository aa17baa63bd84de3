"""Adaptive attacks through a glimpse sampler: BPDA recovers a masked model's robustness, every
attack stays in the threat model, seeded and independent of the batch size."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from bench import attacks
from bench.attacks import PGD, AdaptivePGD
from bench.attacks.base import random_start
from bench.attacks.glimpse_control import samplers, steer
from bench.attacks.trace import Trace, failure_counts, still_rising
from bench.core.conditions import ADAPTIVE, adaptive
from bench.core.errors import BenchError
from bench.models.base import BenchModel, Exits, true_gradient
from bench.models.glimpse import take_glimpse
from bench.models.mgnet import MGNet, MGNetConfig
from bench.models.resnet import backbone
from bench.models.sampler import GlimpseSampler, box_blur
from tests.test_attacks import _data, fit, toy_net

EPS = 6 / 255
TOL = 0.03  # BPDA on the masked model within 3 points (6 of 200 images) of PGD on its smooth twin


class Quantised(GlimpseSampler):
    """A masked sampler: glimpses rounded to 1/255, so its gradient is zero everywhere; its smooth
    surrogate is the same sampling without the rounding."""

    def sample(self, x: torch.Tensor, affine: torch.Tensor, side: int) -> torch.Tensor:
        return torch.round(take_glimpse(x, affine, side) * 255) / 255

    def smooth(self, x: torch.Tensor, affine: torch.Tensor, side: int) -> torch.Tensor:
        return take_glimpse(x, affine, side)


class Bilinear(GlimpseSampler):
    """The twin's sampler: bilinear sampling with its true gradient."""

    def smooth(self, x: torch.Tensor, affine: torch.Tensor, side: int) -> torch.Tensor:
        return take_glimpse(x, affine, side)


class OneGlimpse(BenchModel):
    """A classifier on one 12-px glimpse of the whole 16-px image."""

    def __init__(self, sampler: GlimpseSampler) -> None:
        super().__init__(None, None)
        self.sampler = sampler
        self.net = toy_net()

    def exits_upto(self, x: torch.Tensor, n: int) -> Exits:
        whole = x.new_tensor([1.0, 0.0, 0.0]).expand(len(x), 3)
        return Exits(self.net(self.sampler(x, whole, 12))[None])


@pytest.fixture(scope="module")
def twins() -> tuple[OneGlimpse, OneGlimpse]:
    """(smooth twin, masked model): the same trained weights behind the two samplers."""
    torch.manual_seed(0)
    smooth = fit(OneGlimpse(Bilinear()))
    masked = OneGlimpse(Quantised())
    masked.load_state_dict(smooth.state_dict())
    return smooth.eval(), masked.eval()


def _robust(model: nn.Module, atk: object, x: torch.Tensor, y: torch.Tensor) -> float:
    x_adv = atk(model, x, y, seeds=torch.arange(len(y)))  # type: ignore[operator]
    with torch.no_grad():
        return float((model(x_adv).argmax(1) == y).float().mean())


def test_bpda_recovers_the_robustness_a_masked_sampler_hides(twins) -> None:  # type: ignore[no-untyped-def]
    smooth, masked = twins
    x, y = _data(200, 0)
    pgd, bpda = PGD(EPS, EPS / 4, 10, early_stop=True), AdaptivePGD(EPS, EPS / 4, 10)
    with torch.no_grad():
        assert torch.equal(smooth(x).argmax(1), masked(x).argmax(1)), "the twins agree on x"
    truth = _robust(smooth, pgd, x, y)
    assert truth < 0.8, "the twin is not robust at this ε"
    assert _robust(masked, pgd, x, y) > truth + 0.15, "PGD overstates the masked model"
    assert abs(_robust(masked, bpda, x, y) - truth) <= TOL


def test_bpda_keeps_the_forward_and_gives_every_pixel_a_gradient() -> None:
    torch.manual_seed(0)
    net, dim = backbone("resnet_tiny")
    m = MGNet(net, dim, 10, 64, MGNetConfig(n_iter=3), (0.5,) * 3, (0.25,) * 3).eval()
    x, y = torch.rand(4, 3, 64, 64), torch.tensor([0, 1, 2, 3])

    def grad(route: str) -> tuple[torch.Tensor, torch.Tensor]:
        leaf = x.clone().requires_grad_(True)
        with true_gradient(m), steer(m, route):  # type: ignore[arg-type]
            logits = m(leaf)
        (g,) = torch.autograd.grad(F.cross_entropy(logits, y), leaf)
        return logits.detach(), g

    own, g_own = grad("own")
    through, g_bpda = grad("bpda")
    assert torch.equal(own, through), "BPDA leaves the model's output bit for bit"
    zero_own = (g_own == 0).float().mean()
    assert zero_own > 0.05 and (g_bpda == 0).float().mean() < zero_own / 10
    assert [s.route for s in samplers(m)] == ["own"], "the route is restored"


def test_box_blur_keeps_constants_and_is_centred() -> None:
    x = torch.full((1, 2, 9, 9), 0.3)
    for w in (1, 2, 3, 4):
        assert torch.allclose(box_blur(x, w), x)
    dot = torch.zeros(1, 1, 9, 9)
    dot[0, 0, 4, 4] = 1.0
    out = box_blur(dot, 2)
    assert torch.allclose(out, out.flip(-1).flip(-2)) and abs(float(out.sum()) - 1) < 1e-6


def _tiny_mgnet() -> MGNet:
    """Two glimpses, float64: batch sizes then change no gradient sign through rounding."""
    torch.manual_seed(0)
    net, dim = backbone("resnet_tiny")
    m = MGNet(net, dim, 10, 64, MGNetConfig(n_iter=2), (0.5,) * 3, (0.25,) * 3)
    return m.double().eval()


def _images(n: int, m: MGNet) -> tuple[torch.Tensor, torch.Tensor]:
    """Random images labelled with the model's own predictions, so every attack has work to do."""
    x = torch.rand(n, 3, 64, 64, generator=torch.Generator().manual_seed(n), dtype=torch.float64)
    with torch.no_grad():
        return x, m(x).argmax(1)


ATTACKS = [attacks.build(adaptive(a, eps=16 / 255, steps=4, eot=2)) for a in ADAPTIVE] + [
    AdaptivePGD(1.0, 0.4, 4, norm="l2")
]


@pytest.mark.parametrize("atk", ATTACKS, ids=[*ADAPTIVE, "bpda_l2"])
def test_adaptive_attacks_stay_in_the_threat_model_seeded_and_batch_free(atk) -> None:  # type: ignore[no-untyped-def]
    m = _tiny_mgnet()
    x, y = _images(6, m)
    seeds = torch.arange(6) * 1000
    with true_gradient(m), attacks.attack_mode(m):
        a = atk(m, x, y, seeds=seeds)
        assert torch.equal(a, atk(m, x, y, seeds=seeds)), "deterministic"
        parts = torch.cat(
            [atk(m, x[i : i + 2], y[i : i + 2], seeds=seeds[i : i + 2]) for i in (0, 2, 4)]
        )
        fooled = m(a).argmax(1) != y
    assert torch.allclose(a, parts, atol=1e-9), "the batch does not matter"
    d = (a - x).flatten(1)
    size = d.norm(dim=1) if atk.norm == "l2" else d.abs().amax(1)
    assert float(size.max()) <= atk.eps + 1e-9 and a.min() >= 0 and a.max() <= 1
    start = random_start(x, seeds, atk.eps, atk.norm)
    moved = (a - start).flatten(1).abs().amax(1) > 0
    assert moved.any() and fooled.any(), "the attack stepped from its start and broke images"


def test_eot_draws_other_placements_for_other_seeds() -> None:
    m = _tiny_mgnet()
    atk = attacks.build(adaptive("eot_pgd", eps=8 / 255, steps=2, eot=2))
    x, y = _images(2, m)
    with true_gradient(m), attacks.attack_mode(m):
        one = atk(m, x, y, seeds=torch.tensor([1, 2]))
        other = atk(m, x, y, seeds=torch.tensor([3, 4]))
    assert not torch.equal(one, other)


def test_bad_adaptive_settings_are_clear_errors() -> None:
    with pytest.raises(BenchError, match="without jitter"):
        AdaptivePGD(4 / 255, 1 / 255, 10, eot=4)
    with pytest.raises(BenchError, match="unknown sampler route"):
        AdaptivePGD(4 / 255, 1 / 255, 10, route="nearest")  # type: ignore[arg-type]
    with pytest.raises(BenchError, match="unknown adaptive attack"):
        adaptive("bpda")


def test_steer_restores_every_sampler_even_on_error() -> None:
    m = _tiny_mgnet()
    with pytest.raises(RuntimeError), steer(m, "smooth", torch.zeros(2, 1, 3), record=True):
        raise RuntimeError
    (s,) = samplers(m)
    assert (s.route, s.offsets, s.seen, s.calls) == ("own", None, None, 0)


def test_misdirection_moves_the_glimpses_further_than_bpda() -> None:
    m = _tiny_mgnet()
    x, y = _images(8, m)
    with torch.no_grad():
        clean = m.exits(x).boxes
    moved = {}
    for look in (0.0, 10.0):
        atk = AdaptivePGD(8 / 255, 2 / 255, 5, look=look)
        with true_gradient(m), attacks.attack_mode(m):
            x_adv = atk(m, x, y, seeds=torch.arange(8))
        with torch.no_grad():
            moved[look] = float((m.exits(x_adv).boxes - clean).abs().sum())
    assert moved[10.0] > moved[0.0]


def test_still_rising_flags_only_losses_gaining_over_the_last_fifth() -> None:
    loss = torch.tensor(
        [
            [1.0, 2.0, 3.0, 3.0, 3.0, 3.0, 3.0, 3.0, 3.0, 3.0],  # flat at the end
            [1.0, 1.1, 1.2, 1.3, 1.4, 1.5, 1.6, 1.7, 1.8, 1.9],  # still climbing
            [1.0, 1.1, 1.2, 1.3, 1.4, 1.5, 1.6, 1.7, 1.8, float("nan")],  # stopped early
        ]
    )
    assert still_rising(loss).tolist() == [False, True, False]


def test_traces_count_images_without_gradient(twins) -> None:  # type: ignore[no-untyped-def]
    smooth, masked = twins
    x, y = _data(8, 0)
    for model, zero in ((masked, True), (smooth, False)):
        trace = Trace()
        PGD(EPS, EPS / 4, 3)(model, x, y, seeds=torch.arange(8), trace=trace)
        assert trace.zero_grad.tolist() == [zero] * 8
        counts = failure_counts(trace, torch.ones(8, dtype=torch.bool))
        assert counts["attack_zero_gradient"] == (8 if zero else 0, 8)


def test_eot_offsets_move_only_glimpses_placed_from_the_image() -> None:
    s = GlimpseSampler()
    x = torch.rand(2, 3, 16, 16)
    fixed = torch.tensor([[1.0, 0.0, 0.0]] * 2)
    placed = torch.tensor([[0.5, 0.1, -0.1]] * 2, requires_grad=True)
    s.set_offsets(torch.full((2, 2, 3), 0.05))
    assert torch.equal(s(x, fixed, 8), take_glimpse(x, fixed, 8)), "a fixed glimpse stays"
    assert not torch.equal(s(x, placed, 8), take_glimpse(x, placed, 8)), "a placed one moves"
    assert s.calls == 2
