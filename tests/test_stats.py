"""Intervals and tests on accuracies, checked on hand-computed cases, and the headline's bold
marking: the significant best alone, ties together, nothing where all tie."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

from bench.report import stats
from bench.store import per_image
from bench.store.results import append_rows
from tests.test_results import make_row


def test_wilson_interval_matches_the_hand_computed_case() -> None:
    # k = 5, n = 10, z = 1.96: centre (0.5 + z²/20) / (1 + z²/10) = 0.5;
    # half = z·sqrt(0.025 + z²/400) / (1 + z²/10) = 0.26341
    lo, hi = stats.wilson(5, 10)
    assert lo == pytest.approx(0.23659, abs=1e-5) and hi == pytest.approx(0.76341, abs=1e-5)
    # none correct: the interval still has width, (0, z²/(n + z²))
    assert stats.wilson(0, 10) == pytest.approx((0.0, 1.96**2 / (10 + 1.96**2)), abs=1e-4)
    assert stats.pct_interval(5, 10) == "50.0 (23.7–76.3)"
    assert all(math.isnan(v) for v in stats.wilson(0, 0))


def test_mcnemar_is_the_exact_binomial_test_on_the_disagreeing_images() -> None:
    a = np.array([1, 1, 1, 0, 0, 1], bool)
    b = np.array([0, 0, 0, 0, 1, 1], bool)
    # 3 images only a gets right, 1 only b: p = 2 · (C(4,0) + C(4,1)) / 2⁴ = 0.625
    assert stats.mcnemar(a, b) == pytest.approx(0.625)
    assert stats.mcnemar(a, a) == 1.0
    # 10 against 0: p = 2 / 2¹⁰
    assert stats.mcnemar(np.ones(10, bool), np.zeros(10, bool)) == pytest.approx(2 / 1024)
    # 2,000 images that all disagree, 1,060 against 940 (exact ints: 2.0**2000 overflows a float)
    a = np.arange(2000) < 1060
    assert stats.mcnemar(a, ~a) == pytest.approx(0.0077771189, rel=1e-6)  # scipy binomtest


def test_a_mean_over_images_and_a_paired_difference() -> None:
    m = np.array([0.0, 1.0] * 50)
    lo, hi = stats.mean_interval(m)
    half = 1.959964 * np.std(m, ddof=1) / 10
    assert (lo, hi) == pytest.approx((0.5 - half, 0.5 + half))
    assert stats.paired_differs(m, m - 0.1 * (m > 0))  # the same shift on half the images
    assert not stats.paired_differs(m, m[::-1])  # same mean, images swapped


def test_tied_best_keeps_the_best_and_what_does_not_differ_from_it() -> None:
    values = [0.80, 0.78, 0.40, math.nan]
    far = {(0, 2), (2, 0), (1, 2), (2, 1)}
    assert stats.tied_best(values, True, lambda i, j: (i, j) in far) == {0, 1}
    assert stats.tied_best(values, True, lambda i, j: True) == {0}
    assert stats.tied_best([0.3, 0.2], False, lambda i, j: True) == {1}
    assert stats.tied_best([0.5, math.nan], True, lambda i, j: True) == set()


def _run(tmp_path: Path, correct: dict[str, np.ndarray]) -> list[str]:
    """The headline of a folder with clean rows of the given per-image correctness."""
    from bench.report.headline import section
    from bench.report.tables import load_results

    rows = [
        make_row(model=m, n_images=len(ok), n_correct=int(ok.sum()), accuracy=ok.mean())
        for m, ok in correct.items()
    ]
    tmp_path.mkdir()
    append_rows(tmp_path / "results.csv", rows)
    idx = np.arange(100)
    per_image.append(tmp_path / "per_image.csv", [(r, idx, correct[r.model]) for r in rows])
    df = load_results(tmp_path / "results.csv")
    records = per_image.read(tmp_path / "per_image.csv")
    text = "\n".join(section(df, None, records))
    return [line for line in text.splitlines() if line.startswith("| ")][1:]


def _ok(first: int, n_right: int) -> np.ndarray:
    """100 images, `n_right` correct starting at image `first`."""
    ok = np.zeros(100, bool)
    ok[first : first + n_right] = True
    return ok


def test_the_headline_bolds_the_significant_best_alone_and_ties_together(tmp_path: Path) -> None:
    # a 80 right, b the same 78 of them: 2 discordant images, p = 0.5, a tie; c 40: far below both
    lines = _run(tmp_path / "tie", {"a": _ok(0, 80), "b": _ok(0, 78), "c": _ok(0, 40)})
    clean = {line.split(" | ")[0][2:]: line.split(" | ")[6] for line in lines}
    assert clean == {
        "a": "**80.0 (71.1–86.7)**",
        "b": "**78.0 (68.9–85.0)**",
        "c": "40.0 (30.9–49.8)",
    }

    # a 80 right, b 60 of them: 20 discordant images, p = 2⁻¹⁹, a alone
    lines = _run(tmp_path / "alone", {"a": _ok(0, 80), "b": _ok(0, 60)})
    assert [line.split(" | ")[6] for line in lines] == ["**80.0 (71.1–86.7)**", "60.0 (50.2–69.1)"]

    # 50 each on disjoint images: 100 discordant, 50 each way, p = 1: all tie, none in bold
    lines = _run(tmp_path / "all", {"a": _ok(0, 50), "b": _ok(50, 50)})
    assert [line.split(" | ")[6] for line in lines] == ["50.0 (40.4–59.6)"] * 2


def test_the_mean_over_corruptions_is_bolded_by_a_paired_test_over_images() -> None:
    from bench.report.significance import bold_corruption

    idx = np.arange(100)
    # each model has two corruption rows; an image's accuracy is its mean over them
    images = {
        "a1": (idx, _ok(0, 80)),
        "a2": (idx, _ok(0, 80)),
        "b1": (idx, _ok(0, 78)),  # 2 images lower on both rows: mean difference 0.02,
        "b2": (idx, _ok(0, 78)),  # standard error 0.014, so 0.02 < 1.96 × 0.014: a tie
        "c1": (idx, _ok(0, 40)),
        "c2": (idx, _ok(0, 40)),
    }
    keys = [("a1", "a2"), ("b1", "b2"), ("c1", "c2")]
    assert bold_corruption([0.8, 0.78, 0.4], keys, images) == {0, 1}
    # b 20 images lower: mean difference 0.2, standard error 0.04, a alone
    b_low = {**images, "b1": (idx, _ok(0, 60)), "b2": (idx, _ok(0, 60))}
    assert bold_corruption([0.8, 0.6, 0.4], keys, b_low) == {0}
    # a compared row without records: no interval, so nothing is called
    del b_low["c2"]
    assert bold_corruption([0.8, 0.6, 0.4], keys, b_low) == set()
    # on other images there is no pairing: the normal intervals (±0.08) must not overlap
    shifted = {**images, "c1": (idx + 100, _ok(0, 40)), "c2": (idx + 100, _ok(0, 40))}
    assert bold_corruption([0.8, 0.78, 0.4], keys, shifted) == {0, 1}
    shifted_b = {**images, "b1": (idx + 100, _ok(0, 78)), "b2": (idx + 100, _ok(0, 78))}
    assert bold_corruption([0.8, 0.78, 0.4], keys, shifted_b) == {0, 1}
