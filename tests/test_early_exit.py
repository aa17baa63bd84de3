"""Early exits: the confidence-threshold policy on hand-made confidences, the stored confidences,
and `bench exits` refusing what it cannot evaluate."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch

from bench.attacks.exit_policy import ExitPolicyPGD, ExitStack
from bench.cli import main
from bench.core.errors import BenchError
from bench.evaluation.confidence import exit_confidence
from bench.models.base import BenchModel, Exits
from bench.report import early_exit as ee
from bench.store import confidence
from tests.test_results import make_row


def _fails(argv: list[str], capsys: pytest.CaptureFixture[str], match: str) -> None:
    """One `bench: error:` line naming the problem, exit status 2."""
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("bench: error: ") and "\n" not in err and match in err, err


# 3 exits, 4 images; exit costs 1, 2, 4 GMACs
CORRECT = np.array([[1, 0, 0, 1], [1, 1, 0, 0], [1, 1, 1, 0]], bool)
MSP = np.array([[0.95, 0.50, 0.30, 0.60], [0.99, 0.80, 0.40, 0.70], [0.99, 0.90, 0.50, 0.80]])
DATA = ee.ExitData(np.arange(4), CORRECT, np.stack([MSP, MSP]), np.array([1.0, 2.0, 4.0]))


def test_the_policy_takes_the_first_confident_exit() -> None:
    assert ee.exits_taken(MSP, 0.75).tolist() == [0, 1, 2, 2]
    o = ee.outcome(DATA, 0.75)
    # right: image 0 at exit 1, image 1 at exit 2, image 2 at exit 3; image 3 wrong at exit 3
    assert (o.n_correct, o.n_images) == (3, 4)
    assert o.gmacs == pytest.approx((1 + 2 + 4 + 4) / 4) and o.exit == pytest.approx(9 / 4)


def test_tau_one_is_the_last_exit_and_a_tiny_tau_the_first() -> None:
    last, first = ee.outcome(DATA, 1.0), ee.outcome(DATA, 0.001)
    assert (last.n_correct, last.gmacs, last.exit) == (3, 4.0, 3.0)
    assert (first.n_correct, first.gmacs, first.exit) == (2, 1.0, 1.0)
    c = ee.curve(DATA)
    assert c.gmacs.is_monotonic_increasing and c.tau.iloc[-1] == 1.0


@pytest.mark.parametrize("tau", [0.0, -0.1, 1.5, math.nan])
def test_a_tau_outside_the_unit_interval_is_refused(tau: float) -> None:
    with pytest.raises(BenchError, match=r"τ must be in \(0, 1\]"):
        ee.outcome(DATA, tau)
    with pytest.raises(BenchError, match="resolves to 0.001"):
        ee.outcome(DATA, 0.9995)


def test_under_attack_the_policy_must_be_right_on_the_clean_image_too() -> None:
    # clean, image 1 wrong everywhere: at τ = 0.75 the policy is right on images 0 and 2 only;
    # attacked, every exit is right and sure, so every image stops at exit 1
    clean = ee.ExitData(
        np.arange(4), CORRECT & np.array([1, 0, 1, 1], bool), DATA.confidence, DATA.gmacs
    )
    attacked = ee.ExitData(
        np.arange(4), np.ones((3, 4), bool), np.ones((2, 3, 4)) * 0.9, DATA.gmacs, clean=clean
    )
    o = ee.outcome(attacked, 0.75)
    assert (o.n_correct, o.gmacs) == (2, 1.0), "images 0 and 2 right clean; all stop at exit 1"


def test_confidences_are_the_softmax_maximum_and_one_minus_normalized_entropy() -> None:
    logits = torch.tensor([[[0.0, 0.0], [10.0, -10.0]]])  # 1 exit, 2 images, 2 classes
    conf = exit_confidence(logits)
    assert conf.shape == (2, 1, 2)
    assert conf[0, 0].tolist() == pytest.approx([0.5, 1.0]) and conf[1, 0, 0] == pytest.approx(0)
    assert conf[1, 0, 1] == pytest.approx(1.0, abs=1e-6)


def test_stored_confidences_round_trip_at_a_resolution_of_a_thousandth(tmp_path: Path) -> None:
    assert confidence.encode(np.array([0.0, 0.12349, 0.9996, 1.0])) == "000123999999"
    rows = [make_row(exit=1), make_row(exit=2)]
    values = [np.array([[0.5, 0.99], [0.1, 0.2]]), np.array([[0.25, 1.0], [0.0, 0.3]])]
    confidence.append(tmp_path / "c.csv", zip(rows, values))
    back = confidence.read(tmp_path / "c.csv")
    from bench.store.per_image import row_key

    got = back[row_key(rows[1])]
    assert got.tolist() == [[0.25, 0.999], [0.0, 0.3]]
    line = (tmp_path / "c.csv").read_text().splitlines()[1]
    assert len(line.split(",")[1]) == 3 * 2, "3 bytes per image and measure"


def test_early_exits_end_to_end_and_bad_input(
    trained: None, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "run"
    run = ["run", "--suite", "smoke", "--models", "mgnet_tiny", "resnet_tiny", "--out", str(out)]
    assert main(run + ["--n-images", "8"]) == 0
    conf = confidence.read(out / "confidence.csv")
    assert len(conf) == 2 * 4, "clean and fog, at each of MGNet's 4 exits; none for the ResNet"
    report = (out / "report.md").read_text()
    assert "## Early exits" in report and "early_exit_mgnet_tiny.png" in report
    assert "early_exit_corruptions_mgnet_tiny.png" in report, "the per-corruption figure"
    csv = (out / "early_exit.csv").read_text().splitlines()
    assert csv[0].startswith("dataset,model,weights,condition,severity,measure,tau")
    capsys.readouterr()
    assert main(["exits", str(out), "--tau", "0.5", "1"]) == 0
    table = capsys.readouterr().out
    assert "| mgnet_tiny | 1 | clean (8) |" in table
    assert "| mgnet_tiny | 0.5 | all corruptions, all severities (8) |" in table
    before = sorted(p.name for p in out.iterdir())
    _fails(["exits", str(out), "--tau", "1.5"], capsys, "τ must be in (0, 1]")
    _fails(["exits", str(out), "--tau", "0.9", "--models", "resnet_tiny"], capsys, "one exit")
    _fails(["exits", str(out), "--tau", "0.9", "--models", "nope"], capsys, "no rows of model")
    _fails(["exits", str(out), "--tau", "0.9995"], capsys, "resolves to 0.001")
    (out / "confidence.csv").rename(tmp_path / "moved.csv")
    _fails(["exits", str(out), "--tau", "0.9"], capsys, "holds no per-exit confidences")
    assert sorted(p.name for p in out.iterdir()) == [n for n in before if n != "confidence.csv"]


class TwoExits(BenchModel):
    """Exit 1 is as sure as the image is bright away from 0.5; exit 2 always answers class 0."""

    def __init__(self) -> None:
        super().__init__(None, None)

    @property
    def n_exits(self) -> int:
        return 2

    def exits_upto(self, x: torch.Tensor, n: int) -> Exits:
        d = 20 * (x.mean((1, 2, 3)) - 0.5)
        first = torch.stack([d, -d], 1)
        second = torch.stack([torch.ones_like(d), -torch.ones_like(d)], 1)
        return Exits(torch.stack([first, second])[:n])


@pytest.mark.parametrize("goal", ["union", "slowdown"])
def test_attacks_on_the_policy_stay_in_the_ball(goal: str) -> None:
    x = torch.full((6, 1, 4, 4), 0.55) + torch.linspace(-0.02, 0.02, 6).view(-1, 1, 1, 1)
    y = torch.zeros(6, dtype=torch.long)
    eps = 8 / 255
    x_adv = ExitPolicyPGD(eps, eps / 4, 10, goal)(
        ExitStack(TwoExits()), x, y, seeds=torch.arange(6)
    )
    assert (x_adv - x).abs().max() <= eps + 1e-6 and 0 <= x_adv.min() and x_adv.max() <= 1


def test_the_slowdown_attack_sends_images_to_the_later_exit() -> None:
    model, eps = TwoExits(), 12 / 255
    x = torch.full((6, 1, 4, 4), 0.56) + torch.linspace(-0.01, 0.01, 6).view(-1, 1, 1, 1)
    y = torch.zeros(6, dtype=torch.long)
    x_adv = ExitPolicyPGD(eps, eps / 4, 10, "slowdown")(
        ExitStack(model), x, y, seeds=torch.arange(6)
    )
    with torch.no_grad():
        before = exit_confidence(model.exits(x).logits)[0]
        after = exit_confidence(model.exits(x_adv).logits)[0]
    assert ee.exits_taken(before, 0.8).mean() == 0, "every image stops early when clean"
    assert ee.exits_taken(after, 0.8).mean() == 1, "every attacked image goes on to exit 2"


def test_records_that_do_not_line_up_are_one_error(tmp_path: Path) -> None:
    from bench.report.tables import load_results
    from bench.store import per_image
    from bench.store.results import append_rows

    rows = [make_row(exit=t, exits_total=2, n_images=3, n_correct=1) for t in (1, 2)]
    append_rows(tmp_path / "results.csv", rows)
    ok = np.array([True, False, False])
    per_image.append(tmp_path / "p.csv", [(r, np.arange(3), ok) for r in rows])
    confidence.append(
        tmp_path / "c.csv", [(rows[0], np.full((2, 3), 0.5)), (rows[1], np.full((2, 2), 0.5))]
    )
    df = load_results(tmp_path / "results.csv")
    images, conf = per_image.read(tmp_path / "p.csv"), confidence.read(tmp_path / "c.csv")
    with pytest.raises(BenchError, match="do not line up"):
        ee.cells(df, "m", images, conf)


def test_confidences_merge_across_ranks_in_image_order() -> None:
    from bench.evaluation.correct import Correct, merge

    def part(n: int, start: float) -> Correct:
        conf = np.arange(start, start + 2 * 2 * n).reshape(2, 2, n).astype(np.float32)
        zeros = np.zeros(2, dtype=np.int64)
        return Correct(np.arange(n), np.ones((2, n), bool), 1.0, zeros, zeros, confidence=conf)

    a, b = part(2, 0), part(1, 100)
    m = merge([(np.array([0, 2]), a), (np.array([1]), b)], np.arange(3), 2)
    assert m.confidence is not None
    assert m.confidence[:, :, [0, 2]].tolist() == a.confidence.tolist()
    assert m.confidence[:, :, [1]].tolist() == b.confidence.tolist()
