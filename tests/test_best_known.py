"""Best-known robust accuracy: an image is robust only if it survived every attack run on it; never
above any single attack on the same images, and shown beside them in the report."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from bench.report import best_known
from bench.report.tables import load_results
from bench.store import per_image
from bench.store.results import append_rows
from tests.test_results import make_row

ATTACK = ("fgsm", "pgd", "autoattack", "bpda_pgd", "eot_pgd", "look_pgd", "smooth_transfer")


@st.composite
def per_image_tables(draw: st.DrawFn) -> list[best_known.Part]:
    """Attacks on prefixes of one image permutation, each with random robust flags."""
    n = draw(st.integers(1, 40))
    order = np.random.default_rng(draw(st.integers(0, 2**32 - 1))).permutation(200)[:n]
    parts = []
    for name in draw(st.lists(st.sampled_from(ATTACK), min_size=1, max_size=6, unique=True)):
        k = draw(st.integers(1, n))
        robust = np.array(draw(st.lists(st.booleans(), min_size=k, max_size=k)), dtype=bool)
        parts.append((name, order[:k], robust))
    return parts


@settings(max_examples=200, deadline=None)
@given(per_image_tables())
def test_best_known_is_at_most_every_single_attack_on_the_same_images(parts) -> None:  # type: ignore[no-untyped-def]
    shared, robust, strongest = best_known.combine(parts)
    assert len(shared) == min(len(idx) for _, idx, _ in parts)
    for name, idx, ok in parts:
        pos = {int(i): j for j, i in enumerate(idx)}
        single = np.array([ok[pos[int(i)]] for i in shared])
        assert robust.sum() <= single.sum(), f"best-known above {name}"
        assert not (robust & ~single).any(), "robust only where every attack left it so"
    broken = {n: sum(not ok[list(idx).index(i)] for i in shared) for n, idx, ok in parts}
    if any(broken.values()):
        top = max(broken.values())
        assert strongest.split(", ") == sorted(n for n, k in broken.items() if k == top)
    else:
        assert strongest == ""


def _attack_row(condition: str, idx: np.ndarray, ok: np.ndarray, exit_: int = 1):  # type: ignore[no-untyped-def]
    return make_row(
        kind="attack",
        condition=condition,
        source="bench",
        protocol="strict",
        norm="linf",
        epsilon=4 / 255,
        steps=10,
        exit=exit_,
        subset=f"first{len(idx)}",
        n_images=len(idx),
        n_correct=int(ok.sum()),
        accuracy=float(ok.mean()),
    )


def test_the_table_combines_a_run_folders_attacks_on_their_shared_images(tmp_path: Path) -> None:
    idx = np.arange(10)
    pgd = np.array([1, 1, 1, 1, 0, 0, 0, 0, 1, 1], bool)
    aa = np.array([1, 0, 1, 0, 0], bool)  # AutoAttack on the first 5 images only
    bpda = np.array([0, 1, 1, 0, 0, 0, 0, 0, 0, 0], bool)  # breaks 3 of the 5, as AutoAttack
    paper = np.ones(10, bool)  # the paper protocol is not a strict attack: left out
    rows = [
        (_attack_row("pgd", idx, pgd), idx, pgd),
        (_attack_row("autoattack", idx[:5], aa), idx[:5], aa),
        (_attack_row("bpda_pgd", idx, bpda), idx, bpda),
        (
            make_row(
                kind="attack",
                condition="paper_pgd",
                protocol="paper",
                norm="linf",
                epsilon=4 / 255,
                n_images=10,
                n_correct=10,
                accuracy=1.0,
            ),
            idx,
            paper,
        ),
    ]
    append_rows(tmp_path / "results.csv", [r for r, _, _ in rows])
    per_image.append(tmp_path / "per_image.csv", rows)
    df = load_results(tmp_path / "results.csv")
    table, records = best_known.table(df, per_image.read(tmp_path / "per_image.csv"))
    (r,) = table.itertuples()
    assert (r.n_correct, r.n_images) == (1, 5), "image 2 alone survives all three"
    assert r.attacks == ("AutoAttack", "BPDA", "PGD-10") and r.strongest == "AutoAttack, BPDA"
    shared, robust = records[r.row_key]
    assert shared.tolist() == [0, 1, 2, 3, 4] and robust.tolist() == [0, 0, 1, 0, 0]


def test_only_figures_that_include_autoattack_are_ranked_when_any_does() -> None:
    with_aa, without = ("AutoAttack", "PGD-10"), ("FGSM", "PGD-10", "transfer PGD")
    assert best_known.comparable([with_aa, without, float("nan")]) == [True, False, False]
    assert best_known.comparable([without, ("PGD-10",)]) == [True, True]


def test_the_strongest_attack_is_counted_on_images_right_on_clean() -> None:
    idx = np.arange(4)
    clean = (idx, np.array([1, 1, 0, 0], bool))  # images 2 and 3 are wrong before any attack
    a = ("A", idx, np.array([0, 1, 0, 0], bool))  # breaks image 0
    b = ("B", idx, np.array([1, 1, 0, 0], bool))  # breaks nothing the model got right
    assert best_known.combine([a, b], clean)[2] == "A"
    assert best_known.combine([b], clean)[2] == ""
    assert best_known.combine([a, b])[2] == "A", "without the clean record every miss counts"
