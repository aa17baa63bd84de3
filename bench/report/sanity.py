"""Sanity checks on attack results, derived from the CSV (and checks.csv) alone.

Each finding names a check documented in docs/checks.md: when it is raised, what it means and
what to do. Tolerances are in images, so small subsets do not raise noise.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from bench.report.tables import latest
from bench.store.per_image import Records

LARGE_EPS_MAX_ACC = 0.05  # accuracy allowed at the largest L∞ radius of the sweep
LARGE_EPS = 8 / 255  # the check needs a sweep reaching this radius (a 4/255 cell alone is not one)
MAX_PGD_GAP = 0.10  # PGD may overestimate robustness relative to AutoAttack by this much
TOL_IMAGES = 1  # an accuracy may exceed its bound by this many images before a warning


@dataclass(frozen=True, slots=True)
class Finding:
    """One check's result for one model and exit."""

    model: str
    exit: int
    check: str
    status: str  # ok | warn
    detail: str
    value: float = 0.0  # the count behind a per-image check (the report shows the largest)


def _tol(n: int) -> float:
    return TOL_IMAGES / max(n, 1)


def _on_shared_images(r: Any, ref: Any, images: Records | None) -> tuple[float, float, int] | None:
    """(accuracy of r, accuracy of ref, n) on the images both rows scored; None if unknown."""
    if r.subset == ref.subset:
        return float(r.accuracy), float(ref.accuracy), int(r.n_images)
    if not images or r.row_key not in images or ref.row_key not in images:
        return None
    (ia, ca), (ib, cb) = images[r.row_key], images[ref.row_key]
    shared, pa, pb = np.intersect1d(ia, ib, return_indices=True)
    if not len(shared):
        return None
    return float(ca[pa].mean()), float(cb[pb].mean()), len(shared)


def _monotone(model: str, ex: int, name: str, norm: str, s: pd.DataFrame) -> Finding:
    """Flag an ε sweep whose accuracy rises with ε beyond the tolerance: a weak attack somewhere."""
    rises = [
        (a, b)
        for a, b in zip(s.itertuples(), s.iloc[1:].itertuples())
        if b.accuracy > a.accuracy + _tol(b.n_images)
    ]
    return Finding(
        model,
        ex,
        "monotone_in_eps",
        "warn" if rises else "ok",
        f"{name} {norm}: accuracy rises from ε={rises[0][0].epsilon:.4g} to "
        f"{rises[0][1].epsilon:.4g}"
        if rises
        else f"{name} {norm}: non-increasing in ε",
    )


def _large_eps(model: str, ex: int, s: pd.DataFrame) -> Finding:
    """Flag accuracy left at the sweep's largest L∞ radius, where PGD should break nearly all."""
    top = s.iloc[-1]
    bad = top.accuracy > LARGE_EPS_MAX_ACC
    return Finding(
        model,
        ex,
        "large_eps_accuracy",
        "warn" if bad else "ok",
        f"PGD L∞ at {top.epsilon * 255:.3g}/255 leaves {100 * top.accuracy:.1f} % "
        f"(expected ≤ {100 * LARGE_EPS_MAX_ACC:.0f} %)",
    )


def _sweep_findings(model: str, ex: int, g: pd.DataFrame) -> list[Finding]:
    """The checks on each FGSM and PGD ε sweep of one model and exit."""
    out: list[Finding] = []
    for (name, norm), s in g[g.condition.isin(["fgsm", "pgd"])].groupby(["condition", "norm"]):
        s = s.sort_values("epsilon")
        out.append(_monotone(model, ex, name, norm, s))
        if norm == "linf" and name == "pgd" and len(s) and s.epsilon.max() >= LARGE_EPS - 1e-9:
            out.append(_large_eps(model, ex, s))
    return out


def _pgd_vs_fgsm(model: str, ex: int, g: pd.DataFrame, p: pd.DataFrame) -> list[Finding]:
    """Flag radii where iterated PGD leaves more accuracy than single-step FGSM."""
    f = g[(g.condition == "fgsm")].set_index("epsilon")
    both = f.index.intersection(p.index)
    if not len(both):
        return []
    worse = [
        e for e in both if p.loc[e, "accuracy"] > f.loc[e, "accuracy"] + _tol(p.loc[e, "n_images"])
    ]
    return [
        Finding(
            model,
            ex,
            "pgd_not_weaker_than_fgsm",
            "warn" if worse else "ok",
            f"PGD above FGSM at ε={worse[0] * 255:.3g}/255"
            if worse
            else f"PGD ≤ FGSM at {len(both)} radii",
        )
    ]


def _against_pgd(
    model: str, ex: int, r, ref, shared: tuple[float, float, int], check: str, relation: str
) -> list[Finding]:  # type: ignore[no-untyped-def]
    """Compare one AutoAttack or transfer row with white-box PGD on the same images."""
    acc, ref_acc, n = shared
    bad = (acc > ref_acc + _tol(n)) if relation == "above" else (acc < ref_acc - _tol(n))
    out = [
        Finding(
            model,
            ex,
            check,
            "warn" if bad else "ok",
            f"{r.condition} {100 * acc:.1f} % vs white-box PGD {100 * ref_acc:.1f} % "
            f"at {r.epsilon * 255:.3g}/255 on the same {n} images",
        )
    ]
    if r.condition == "autoattack":
        gap = ref_acc - acc
        out.append(
            Finding(
                model,
                ex,
                "pgd_gap_to_autoattack",
                "warn" if gap > MAX_PGD_GAP else "ok",
                f"PGD-{int(ref['steps'])} leaves {100 * gap:.1f} points more than AutoAttack at "
                f"{r.epsilon * 255:.3g}/255 on the same {n} images",
            )
        )
    return out


# (weaker, stronger): the stronger attack should break every image the weaker one breaks
STRONGER = (("fgsm", "pgd"), ("pgd", "autoattack"), ("fgsm", "autoattack"))


def _broken_not_by(weak: Any, strong: Any, images: Records) -> tuple[int, int] | None:
    """(images `weak` broke that `strong` left robust, images both ran on); None without records."""
    if weak.row_key not in images or strong.row_key not in images:
        return None
    (iw, cw), (is_, cs) = images[weak.row_key], images[strong.row_key]
    _, pw, ps = np.intersect1d(iw, is_, return_indices=True)
    return int((~cw[pw] & cs[ps]).sum()), len(pw)


def _weaker_findings(model: str, ex: int, g: pd.DataFrame, images: Records | None) -> list[Finding]:
    """Flag a weaker attack that broke images a stronger one left robust, on the same images."""
    out: list[Finding] = []
    if not images:
        return out  # per-image records are what this check compares
    for (norm, eps), at in g.groupby(["norm", "epsilon"]):
        by = {r.condition: r for r in at.itertuples()}
        for weak, strong in STRONGER:
            got = (
                _broken_not_by(by[weak], by[strong], images) if {weak, strong} <= set(by) else None
            )
            if got is None or not got[1]:
                continue
            k, n = got
            out.append(
                Finding(
                    model,
                    ex,
                    "weaker_attack_breaks_more",
                    "warn" if k > TOL_IMAGES else "ok",
                    f"{weak} broke {k} of {n} images that {strong} left robust ({norm} "
                    f"{f'{eps * 255:.3g}/255' if norm == 'linf' else f'{eps:g}'})",
                    float(k),
                )
            )
    return out


def _reference_findings(
    model: str, ex: int, g: pd.DataFrame, p: pd.DataFrame, images: Records | None
) -> list[Finding]:
    """AutoAttack must not leave more than PGD, a transfer attack not less, at each radius."""
    out: list[Finding] = []
    for other, check, relation in (
        ("autoattack", "autoattack_not_weaker_than_pgd", "above"),
        ("transfer_pgd", "transfer_not_stronger_than_whitebox", "below"),
        ("smooth_transfer", "transfer_not_stronger_than_whitebox", "below"),
    ):
        for r in g[g.condition == other].itertuples():
            ref = p.loc[r.epsilon] if r.epsilon in p.index else None
            shared = None if ref is None else _on_shared_images(r, ref, images)
            if shared is None:
                continue  # nothing comparable: other images, and no per-image record
            out += _against_pgd(model, ex, r, ref, shared, check, relation)
    return out


def attack_findings(df: pd.DataFrame, images: Records | None = None) -> list[Finding]:
    """Monotone in ε, PGD <= FGSM, ~0 at a large ε, AutoAttack <= PGD, transfer >= white-box, and
    no weaker attack breaking images a stronger one left robust.

    `images` (per_image.read) lets rows on different subsets be compared on their shared images;
    the frame then needs a `row_key` column.
    """
    att = latest(df[(df.kind == "attack") & (df.protocol == "strict")])
    out: list[Finding] = []
    for (_, model, ex), g in att.groupby(["dataset", "model", "exit"]):  # data sets apart
        p = g[(g.condition == "pgd") & (g.norm == "linf") & (g.steps > 1)].set_index("epsilon")
        out += _sweep_findings(model, ex, g)
        out += _pgd_vs_fgsm(model, ex, g, p)
        out += _reference_findings(model, ex, g, p, images)
        out += _weaker_findings(model, ex, g, images)
    return out
