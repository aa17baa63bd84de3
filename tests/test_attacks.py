"""Attacks: threat-model bounds, determinism, torchattacks parity, guards, AutoAttack resume."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from bench import attacks
from bench.attacks import (
    FGSM,
    PGD,
    AutoAttack,
    LogitsGuard,
    PaperPGD,
    PassCounter,
    TorchattacksAttack,
    attack_mode,
)
from bench.attacks.autoattack import Flags
from bench.core.errors import BenchError
from bench.models.base import BenchModel, Classifier, Exits


def _data(n: int = 64, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Two-class 16x16 images: class 1 has a brighter centre; both classes fill [0,1]."""
    g = torch.Generator().manual_seed(seed)
    y = torch.arange(n) % 2
    x = torch.rand(n, 3, 16, 16, generator=g) * 0.6 + 0.2
    x[:, :, 4:12, 4:12] += (y.float() * 0.1 - 0.05).view(-1, 1, 1, 1)
    return x.clamp(0, 1), y


def toy_net() -> nn.Module:
    """Conv, pool and a linear layer: two classes from a 16-px image."""
    return nn.Sequential(
        nn.Conv2d(3, 8, 3, padding=1),
        nn.ReLU(),
        nn.AdaptiveAvgPool2d(4),
        nn.Flatten(),
        nn.Linear(128, 2),
    )


def fit(model: nn.Module) -> nn.Module:
    """The model trained on 256 of _data's images (150 Adam steps), in eval mode."""
    x, y = _data(256, 1)
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    for _ in range(150):
        opt.zero_grad()
        F.cross_entropy(model(x), y).backward()
        opt.step()
    return model.eval()


@pytest.fixture(scope="module")
def toy() -> nn.Module:
    """A small conv net trained to near-perfect accuracy in well under a second."""
    torch.manual_seed(0)
    model = fit(Classifier(toy_net(), (0.5, 0.5, 0.5), (0.25, 0.25, 0.25)))
    x, y = _data(256, 1)
    assert (model(x).argmax(1) == y).float().mean() > 0.95
    return model


def acc(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> float:
    with torch.no_grad():
        return (model(x).argmax(1) == y).float().mean().item()


SEEDS = torch.arange(64)


@pytest.mark.parametrize(
    "atk",
    [
        FGSM(8 / 255),
        PGD(8 / 255, 2 / 255, 10),
        PGD(0.5, 0.125, 10, norm="l2"),
        PGD(8 / 255, 2 / 255, 5, restarts=3),
        TorchattacksAttack("pgd", 8 / 255, "linf", 2 / 255, 10),
        TorchattacksAttack("pgd", 0.5, "l2", 0.125, 10),
    ],
)
def test_adversarial_examples_stay_in_the_ball_and_the_image_range(toy: nn.Module, atk) -> None:  # type: ignore[no-untyped-def]
    x, y = _data()
    x_adv = atk(toy, x, y, seeds=SEEDS)
    assert x_adv.shape == x.shape and x_adv.min() >= 0 and x_adv.max() <= 1
    d = (x_adv - x).flatten(1)
    if getattr(atk, "norm", "linf") == "l2":
        assert d.norm(dim=1).max() <= atk.eps + 1e-5
    else:
        assert d.abs().max() <= atk.eps + 1e-6
    assert acc(toy, x_adv, y) < acc(toy, x, y) - 0.3, (
        "the attack lowers accuracy on a trained model"
    )


@pytest.mark.parametrize("atk", [FGSM(0.0), PGD(0.0, 0.0, 10), PGD(0.0, 0.0, 10, norm="l2")])
def test_zero_epsilon_changes_nothing(toy: nn.Module, atk) -> None:  # type: ignore[no-untyped-def]
    x, y = _data()
    assert torch.equal(atk(toy, x, y, seeds=SEEDS), x)


def test_seeded_per_image_and_independent_of_batch_size(toy: nn.Module) -> None:
    x, y = _data()
    atk = PGD(8 / 255, 2 / 255, 3)
    a = atk(toy, x, y, seeds=SEEDS)
    assert torch.equal(a, atk(toy, x, y, seeds=SEEDS))
    parts = torch.cat(
        [atk(toy, x[s : s + 5], y[s : s + 5], seeds=SEEDS[s : s + 5]) for s in range(0, 64, 5)]
    )
    assert torch.allclose(a, parts, atol=1e-6)
    assert not torch.equal(a, atk(toy, x, y, seeds=SEEDS + 1))


@pytest.mark.parametrize("norm,eps,step", [("linf", 8 / 255, 2 / 255), ("l2", 0.5, 0.1)])
def test_pgd_matches_torchattacks_without_random_start(
    toy: nn.Module, norm: str, eps: float, step: float
) -> None:
    import torchattacks

    x, y = _data()
    ours = PGD(eps, step, 10, norm=norm, random_start=False)(toy, x, y, seeds=SEEDS)  # type: ignore[arg-type]
    cls = torchattacks.PGD if norm == "linf" else torchattacks.PGDL2
    atk = cls(toy, eps=eps, alpha=step, steps=10, random_start=False)
    # one image at a time: torchattacks' batch-mean loss makes its L2 steps depend on the batch
    # wherever gradients are as small as its 1e-10 guard; ours sums, so each image is on its own
    ref = torch.cat([atk(x[i : i + 1], y[i : i + 1]) for i in range(len(x))])
    assert torch.allclose(ours, ref, atol=1e-6)


@pytest.mark.parametrize("norm,eps,step", [("linf", 4 / 255, 1 / 255), ("l2", 0.25, 0.06)])
def test_early_stop_keeps_the_first_fooling_iterate_and_only_breaks_more(
    toy: nn.Module, norm: str, eps: float, step: float
) -> None:
    x, y = _data()
    full, early = (PassCounter(toy), PassCounter(toy))
    last = PGD(eps, step, 10, norm=norm)(full, x, y, seeds=SEEDS)  # type: ignore[arg-type]
    first = PGD(eps, step, 10, norm=norm, early_stop=True)(early, x, y, seeds=SEEDS)  # type: ignore[arg-type]
    with torch.no_grad():
        robust_last, robust_first = toy(last).argmax(1) == y, toy(first).argmax(1) == y
    # robust early => robust at the end
    assert robust_first.sum() < len(y) and (robust_first <= robust_last).all()
    # same path until an image stops
    assert torch.allclose(first[robust_first], last[robust_first], atol=1e-6)
    d = (first - x).flatten(1)
    assert first.min() >= 0 and first.max() <= 1
    assert (d.norm(dim=1) if norm == "l2" else d.abs().amax(1)).max() <= eps + 1e-5
    # stopped images cost nothing
    assert early.n_forward < full.n_forward and early.n_backward < full.n_backward
    parts = torch.cat(
        [
            PGD(eps, step, 10, norm=norm, early_stop=True)(
                toy,
                x[s : s + 7],
                y[s : s + 7],  # type: ignore[arg-type]
                seeds=SEEDS[s : s + 7],
            )
            for s in range(0, 64, 7)
        ]
    )
    assert torch.allclose(first, parts, atol=1e-6)


def test_fgsm_matches_torchattacks(toy: nn.Module) -> None:
    import torchattacks

    x, y = _data()
    assert torch.allclose(
        FGSM(4 / 255)(toy, x, y, seeds=SEEDS), torchattacks.FGSM(toy, eps=4 / 255)(x, y), atol=1e-6
    )


def test_strict_attack_runs_in_pixel_space_and_paper_in_normalized_space(toy: nn.Module) -> None:
    x, y = _data()
    strict = PGD(4 / 255, 1 / 255, 10, random_start=False)(toy, x, y, seeds=SEEDS)
    # reaches ε in pixels
    assert (strict - x).abs().max().item() == pytest.approx(4 / 255, abs=1e-6)
    paper = PaperPGD().with_space(toy)
    assert paper.std == (0.25, 0.25, 0.25)
    adv = paper(toy, x, y, seeds=SEEDS)
    # ε = 4/255 in normalized units is 4/255 * std in pixels, and nothing clamps to [0,1]
    assert (adv - x).abs().max().item() == pytest.approx(4 / 255 * 0.25, abs=1e-6)
    x_edge = x.clone()
    x_edge[:, :, 0, 0] = 1.0
    adv_edge = paper(toy, x_edge, y, seeds=SEEDS)
    assert adv_edge.max() > 1.0 or adv_edge.min() < 0.0 or (adv_edge - x_edge).abs().max() > 0


def test_bad_attack_arguments_are_clear_errors() -> None:
    for make, match in [
        (lambda: PGD(-0.1, 0.01, 10), "epsilon"),
        (lambda: PGD(1.5, 0.01, 10), "epsilon"),
        (lambda: PGD(0.1, 0.01, 0), "steps must be positive"),
        (lambda: PGD(0.1, 0.01, 10, norm="l1"), "unknown norm"),  # type: ignore[arg-type]
        (lambda: FGSM(float("nan")), "epsilon"),
    ]:
        with pytest.raises(BenchError, match=match):
            make()


class DictModel(nn.Module):
    def forward(self, x: torch.Tensor) -> dict:
        return {"logits": x.mean((2, 3))}


class ProbModel(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.mean((2, 3)).softmax(1)


def test_guard_refuses_dicts_and_probabilities() -> None:
    x, y = _data(4)
    with pytest.raises(BenchError, match="returned dict"):
        FGSM(0.1)(LogitsGuard(DictModel()), x, y, seeds=SEEDS[:4])
    with pytest.raises(BenchError, match="look like probabilities"):
        FGSM(0.1)(LogitsGuard(ProbModel()), x, y, seeds=SEEDS[:4])


def test_attack_mode_restores_every_flag_even_on_error(toy: nn.Module) -> None:
    toy.train()
    toy.net[0].eval()
    toy.net[4].weight.requires_grad_(False)
    with pytest.raises(RuntimeError):
        with attack_mode(toy):
            assert not toy.training and not any(p.requires_grad for p in toy.parameters())
            raise RuntimeError("boom")
    assert toy.training and not toy.net[0].training and toy.net[1].training
    assert toy.net[0].weight.requires_grad and not toy.net[4].weight.requires_grad
    toy.net[4].weight.requires_grad_(True)
    toy.eval()


def _five_class(seed: int = 0) -> tuple[nn.Module, torch.Tensor, torch.Tensor]:
    torch.manual_seed(seed)
    model = Classifier(nn.Sequential(nn.Flatten(), nn.Linear(3 * 8 * 8, 5)), None, None).eval()
    x = torch.rand(12, 3, 8, 8)
    with torch.no_grad():
        y = model(x).argmax(1)  # every image starts correctly classified
    return model, x, y


def few_square_queries(monkeypatch: pytest.MonkeyPatch, n_queries: int = 500) -> None:
    """Square with fewer queries (library default 5,000): these tests check the cascade's logic."""
    real = AutoAttack._objects

    def objects(self, model, n_classes, device):  # type: ignore[no-untyped-def]
        aa = real(self, model, n_classes, device)
        aa.square.n_queries = n_queries
        return aa

    monkeypatch.setattr(AutoAttack, "_objects", objects)


def test_autoattack_runs_below_ten_classes_and_resumes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    few_square_queries(monkeypatch)
    model, x, y = _five_class()
    # a radius where both APGD stages fool images and 2 of 12 reach Square
    atk = AutoAttack(6 / 255)
    assert atk.attacks(5) == ("apgd-ce", "apgd-t", "fab-t", "square") and atk.attacks(3) == (
        "apgd-ce",
        "fab-t",
        "square",
    )
    flags = Flags()
    whole = PassCounter(model)
    full = atk.robust(
        whole, x, y, seed=0, batch_size=5, flags=flags, state=tmp_path / "aa-done.json"
    )
    assert full.dtype == torch.bool and full.shape == (12,)
    assert flags.robust_after == {"clean": 12, "apgd-ce": 4, "apgd-t": 2, "fab-t": 2, "square": 2}
    calls = {"n": 0}

    def die_in_fab(name: str) -> None:  # the 7th of 12 chunks: APGD-CE and APGD-T done
        calls["n"] += 1
        if calls["n"] == 7:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        atk.robust(
            PassCounter(model),
            x,
            y,
            seed=0,
            batch_size=5,
            state=tmp_path / "aa-cut.json",
            progress=die_in_fab,
        )
    # killed in FAB-T; killed after the last chunk, before the rows
    for state in ("aa-cut.json", "aa-done.json"):
        again, counter = Flags(), PassCounter(model)
        resumed = atk.robust(
            counter, x, y, seed=0, batch_size=5, state=tmp_path / state, flags=again
        )
        assert torch.equal(resumed, full)
        # the Square check's counts survive a resume
        assert again.robust_after == flags.robust_after, state
        # the passes of the interrupted run count too: the rows say what the whole attack cost
        assert (counter.n_forward, counter.n_backward) == (whole.n_forward, whole.n_backward), state
        assert again.resumed_seconds > 0
    strong = AutoAttack(64 / 255).robust(model, x, y, seed=0, batch_size=5)
    assert strong.sum() < full.sum() or full.sum() == 0


def test_autoattack_on_three_classes_runs_fab_t(monkeypatch: pytest.MonkeyPatch) -> None:
    """FAB-T targets the K-1 other classes, so runs on 3 (only targeted APGD's DLR loss needs 4)."""
    few_square_queries(monkeypatch)
    torch.manual_seed(0)
    model = Classifier(nn.Sequential(nn.Flatten(), nn.Linear(3 * 8 * 8, 3)), None, None).eval()
    x = torch.rand(6, 3, 8, 8)
    with torch.no_grad():
        y = model(x).argmax(1)
    flags = Flags()
    robust = AutoAttack(2 / 255).robust(model, x, y, seed=0, batch_size=6, flags=flags)
    assert list(flags.robust_after) == ["clean", "apgd-ce", "fab-t", "square"]
    assert flags.robust_after["apgd-ce"] > 0, "FAB-T had images to attack"
    assert flags.robust_after["square"] == int(robust.sum())


def test_a_resumed_autoattack_keeps_the_messages_of_its_input_checks(tmp_path: Path) -> None:
    """pyautoattack's input checks run before chunk 1 only; a resumed cell keeps their messages."""
    net, x, y = _five_class()

    class Noisy(nn.Module):  # a randomized defence, which the first check flags
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return net(x + 0.01 * torch.randn_like(x))

    atk = AutoAttack(64 / 255)  # APGD-CE breaks every image: a quick cascade
    whole = Flags()
    atk.robust(Noisy(), x, y, seed=0, batch_size=5, flags=whole)
    assert any("randomized defense" in m for m in whole.messages)

    def die(name: str) -> None:
        raise KeyboardInterrupt

    state = tmp_path / "aa.json"
    with pytest.raises(KeyboardInterrupt):
        atk.robust(Noisy(), x, y, seed=0, batch_size=5, state=state, progress=die)
    resumed = Flags()
    atk.robust(Noisy(), x, y, seed=0, batch_size=5, state=state, flags=resumed)
    assert resumed.messages == whole.messages and resumed.robust_after == whole.robust_after


def test_autoattack_refuses_examples_outside_the_threat_model(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """pyautoattack only logs its max perturbation; examples beyond ε or [0,1] are refused."""
    model, x, y = _five_class()
    # its examples pass: test_autoattack_runs_below_ten_classes_and_resumes
    honest = AutoAttack._run_one
    for bad in (
        lambda a: (a + 0.2).clamp(0, 1),
        lambda a: a * 1.5 - 0.1,
        lambda a: a + float("nan"),
    ):
        monkeypatch.setattr(
            AutoAttack, "_run_one", staticmethod(lambda *args, f=bad: f(honest(*args)))
        )
        with pytest.raises(BenchError, match="returned images outside the threat model"):
            AutoAttack(6 / 255).robust(model, x, y, seed=0, batch_size=12)


def test_torchattacks_backend_scores_in_eval_mode() -> None:
    """torchattacks restores a module it finds in training mode; the harness's wrappers must not
    look like one, or the re-check of the adversarial images runs batch norm on batch statistics and
    overwrites its running ones."""
    from bench.core.conditions import pgd
    from bench.data import ArrayImageSet, to_unit
    from bench.evaluation.scoring import evaluate

    torch.manual_seed(0)
    net = nn.Sequential(
        nn.Conv2d(3, 4, 3),
        nn.BatchNorm2d(4),
        nn.ReLU(),
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(),
        nn.Linear(4, 2),
    )
    model = Classifier(net, (0.5, 0.5, 0.5), (0.25, 0.25, 0.25)).eval()
    bn = net[1]
    bn.running_mean.fill_(0.3)
    stats = bn.running_mean.clone(), bn.running_var.clone(), bn.num_batches_tracked.clone()
    modes: list[bool] = []
    bn.register_forward_hook(lambda m, i, o: modes.append(m.training))
    pixels = np.random.default_rng(0).integers(0, 256, (6, 16, 16, 3), dtype=np.uint8)
    with torch.no_grad():
        labels = model(to_unit(pixels, torch.device("cpu"))).argmax(1).numpy()
    images = ArrayImageSet("toy", "test", ("a", "b"), pixels, labels)
    evaluate(
        model,
        images,
        np.arange(6),
        pgd(4 / 255, source="torchattacks"),
        seed=0,
        batch_size=6,
        device=torch.device("cpu"),
    )
    assert modes and not any(modes), "a forward pass ran batch norm in training mode"
    assert all(
        torch.equal(a, b)
        for a, b in zip(stats, (bn.running_mean, bn.running_var, bn.num_batches_tracked))
    )


def test_registry_builds_from_conditions() -> None:
    from bench.core.conditions import PAPER_PGD, autoattack, fgsm, pgd

    assert isinstance(attacks.build(fgsm(2 / 255)), FGSM)
    p = attacks.build(pgd(8 / 255, "l2"))
    assert (
        isinstance(p, PGD)
        and p.norm == "l2"
        and p.step_size == pytest.approx(2 / 255)
        and p.early_stop
    )
    assert isinstance(attacks.build(pgd(8 / 255, source="torchattacks")), TorchattacksAttack)
    # torchattacks returns the last iterate
    assert pgd(8 / 255, source="torchattacks").params.json() == "{}"
    for restarts, random_start, says in (
        (0, True, "restarts must be positive"),
        (3, False, "repeat the same run"),
    ):
        with pytest.raises(BenchError, match=says):
            PGD(8 / 255, 2 / 255, 10, restarts=restarts, random_start=random_start)
    with pytest.raises(BenchError, match="torchattacks' PGD has no restarts"):
        attacks.build(pgd(8 / 255, restarts=3, source="torchattacks"))
    assert isinstance(attacks.build(PAPER_PGD), PaperPGD)
    assert isinstance(attacks.build(autoattack()), AutoAttack)


def test_model_checks_flag_randomized_models_and_zero_gradients() -> None:
    from bench.evaluation.model_checks import model_checks
    from bench.models.base import Classifier

    class Noisy(nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return F.dropout(x.mean((2, 3)), 0.5, training=True)  # random even in eval mode

    x, y = torch.rand(4, 3, 8, 8), torch.tensor([0, 1, 2, 0])
    res = {c[1]: c for c in model_checks(Classifier(Noisy(), None, None), x, y)}
    assert res["deterministic"][2] == "warn"

    class Corner(nn.Module):  # looks at one pixel only: almost every input entry has zero gradient
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return x[:, :, 0, 0]

    res = {c[1]: c for c in model_checks(Classifier(Corner(), None, None), x, y)}
    assert res["deterministic"][2] == "ok" and res["zero_gradient_fraction"][2] == "warn"
    assert res["zero_gradient_fraction"][3] == pytest.approx(63 / 64)
    assert "rescaler_effect" not in res, "no gradient shaper, nothing to compare"


def test_a_stop_gradient_alone_gets_the_gradient_shaper_check() -> None:
    """The check compares the official attack's gradient with the true one for any training-only
    gradient shaper, not only a rescaler with s != 1."""
    from bench.evaluation.model_checks import model_checks
    from bench.models.base import Classifier, GradStop

    class HalfStopped(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.stop = GradStop()

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            a, b = x[:, 0].mean((1, 2)), x[:, 1].mean((1, 2))
            return torch.stack([a - self.stop(b), self.stop(a) + b], 1)

    x, y = torch.rand(4, 3, 8, 8), torch.tensor([0, 1, 0, 1])
    res = {c[1]: c for c in model_checks(Classifier(HalfStopped(), None, None), x, y)}
    assert res["rescaler_effect"][3] < 0.99 and "a different direction" in res["rescaler_effect"][4]


class _Noisy(nn.Module):
    """A randomized defence: noise on the input at every call."""

    def __init__(self, net: nn.Module) -> None:
        super().__init__()
        self.net = net

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x + 0.01 * torch.randn_like(x))


def test_autoattack_rand_version_runs_eot_apgd() -> None:
    net, x, y = _five_class(1)
    atk = AutoAttack(8 / 255, version="rand")
    assert atk.attacks(5) == ("apgd-ce", "apgd-dlr")
    flags = Flags()
    robust = atk.robust(_Noisy(net).eval(), x[:4], y[:4], seed=0, batch_size=4, flags=flags)
    assert robust.shape == (4,) and robust.dtype == torch.bool
    # pyautoattack skips it
    assert not any("randomized" in m for m in flags.messages), "rand was told to use rand"


class _SlowSecondExit(BenchModel):
    """Two exits; computing exit 2 sleeps, so its attacks take measurably longer than exit 1's."""

    def __init__(self) -> None:
        super().__init__(None, None)
        torch.manual_seed(0)
        self.a, self.b = nn.Linear(3 * 4 * 4, 3), nn.Linear(3 * 4 * 4, 3)

    @property
    def n_exits(self) -> int:
        return 2

    def exits_upto(self, x: torch.Tensor, n: int) -> Exits:
        h = x.flatten(1)
        logits = [self.a(h)]
        if n == 2:
            time.sleep(0.02)  # well above the timing noise of a loaded machine
            logits.append(self.b(h))
        return Exits(torch.stack(logits))


@pytest.mark.parametrize("condition", ["pgd", "transfer_pgd"])
def test_attack_rows_time_each_exit_when_each_is_attacked(condition: str) -> None:
    from bench.core.conditions import pgd, transfer
    from bench.data import ArrayImageSet
    from bench.evaluation.scoring import evaluate

    model = _SlowSecondExit()
    pixels = np.random.default_rng(0).integers(0, 256, (6, 4, 4, 3), dtype=np.uint8)
    images = ArrayImageSet("toy", "test", ("a", "b", "c"), pixels, np.arange(6) % 3)
    cond = pgd(4 / 255, steps=3) if condition == "pgd" else transfer("src")
    c = evaluate(
        model,
        images,
        np.arange(6),
        cond,
        seed=0,
        batch_size=3,
        device=torch.device("cpu"),
        sources={"src": model},
    )
    if condition == "transfer_pgd":  # one attack scores both exits: no per-exit time
        assert c.exit_seconds is None and c.seconds_of(1, 2) == c.seconds_of(2, 2) == c.seconds / 2
        return
    assert c.exit_seconds is not None and c.exit_seconds[1] > c.exit_seconds[0]
    assert c.exit_seconds.sum() == pytest.approx(c.seconds)
    assert c.seconds_of(2, 2) == c.exit_seconds[1]


class _Wavy(BenchModel):
    """Class 1 iff cos(2π·mean brightness/(20/255)) > 0: a 10/255 FGSM step flips any prediction."""

    def __init__(self) -> None:
        super().__init__(None, None)

    @property
    def n_exits(self) -> int:
        return 1

    def exits_upto(self, x: torch.Tensor, n: int) -> Exits:
        z = 10 * torch.cos(2 * torch.pi * x.mean((1, 2, 3)) / (20 / 255))
        return Exits(torch.stack([torch.zeros_like(z), z], 1)[None])


class _Dim(_Wavy):
    """Class 1 the darker the image: its attacks on label 1 brighten every pixel by ε."""

    def exits_upto(self, x: torch.Tensor, n: int) -> Exits:
        z = -x.mean((1, 2, 3))
        return Exits(torch.stack([torch.zeros_like(z), z], 1)[None])


@pytest.mark.parametrize("condition", ["fgsm", "transfer_pgd"])
def test_an_image_misclassified_clean_is_never_robust(condition: str) -> None:
    """Strict and transfer rows count an image robust only if it is also classified right clean.

    Strict rows use one code path for FGSM, PGD and both backends. Here each attack lands images 0
    and 1 on their label.
    """
    from bench.core.conditions import fgsm, transfer
    from bench.data import ArrayImageSet, to_unit
    from bench.evaluation.scoring import evaluate

    model = _Wavy().eval()
    pixels = np.full((4, 4, 4, 3), 132, dtype=np.uint8)  # brightness 6.6 periods: class 0
    labels = np.array([1, 1, 0, 0])
    x, y = to_unit(pixels, torch.device("cpu")), torch.from_numpy(labels)
    assert model(x).argmax(1).tolist() == [0, 0, 0, 0]
    assert model(FGSM(10 / 255)(model, x, y, seeds=SEEDS[:4])).argmax(1).tolist() == [1, 1, 1, 1]
    images = ArrayImageSet("toy", "test", ("a", "b"), pixels, labels)
    cond = fgsm(10 / 255) if condition == "fgsm" else transfer("src", 10 / 255)
    c = evaluate(
        model,
        images,
        np.arange(4),
        cond,
        seed=0,
        batch_size=4,
        device=torch.device("cpu"),
        sources={"src": _Dim().eval()},
    )
    assert not c.correct[0].any(), "an image wrong on the clean input was counted robust"


def test_transfer_random_starts_follow_the_attack_not_the_source_checkpoint_file(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Equal tensors in two checkpoint files (another sidecar date, another file hash) give equal
    transfer rows: the source's weights label never enters the random starts. Other attacks keep the
    seeds they always had."""
    import dataclasses

    import bench.evaluation.scoring as ev
    from bench.core.conditions import Condition, pgd, transfer
    from bench.core.params import Params
    from bench.data import ArrayImageSet

    def labelled(source: str, weights: str) -> Condition:
        return dataclasses.replace(
            transfer(source), params=Params({"from": source, "from_weights": weights})
        )

    a, b, other = labelled("src", "aaa"), labelled("src", "bbb"), labelled("other", "aaa")
    assert ev._seed_tag(a) == ev._seed_tag(b) != ev._seed_tag(other)
    p = pgd(4 / 255, steps=3)
    assert ev._seed_tag(p) == f"pgd|linf|{4 / 255!r}|" + '{"early_stop":true}'

    drawn: list[np.ndarray] = []
    seeds = ev.image_seeds
    monkeypatch.setattr(ev, "image_seeds", lambda *args: drawn.append(seeds(*args)) or drawn[-1])
    pixels = np.random.default_rng(0).integers(0, 256, (6, 4, 4, 3), dtype=np.uint8)
    images = ArrayImageSet("toy", "test", ("a", "b", "c"), pixels, np.arange(6) % 3)
    model = _SlowSecondExit()
    for cond in (a, b):
        ev.evaluate(
            model,
            images,
            np.arange(6),
            cond,
            seed=0,
            batch_size=6,
            device=torch.device("cpu"),
            sources={"src": model},
        )
    assert len(drawn) == 2 and np.array_equal(drawn[0], drawn[1])
