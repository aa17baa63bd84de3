"""Best-known robust accuracy: an image counts as robust only if it survived every attack run on it
(torch-free).

Per (data set, model, weights, exit, norm, ε), over every strict attack row of a run folder (FGSM,
PGD at any step count, AutoAttack, transfer and the adaptive attacks; each row's newest scoring), on
the images all of them ran on, from per_image.csv. Its records join the run's under a `best:` key,
so the significance tests pair it with single attacks on the same images like any other row.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from functools import reduce

import numpy as np
import pandas as pd

from bench.core.conditions import HEADLINE_EPS
from bench.report.fmt import attack_name
from bench.report.tables import KEY
from bench.store.per_image import Record, Records

STANDARD = "AutoAttack"  # best-known figures are ranked only among those that include it
CELL = ["dataset", "model", "weights", "exit", "norm", "epsilon"]
COLUMNS = [
    "n_correct",
    "n_images",
    "accuracy",
    "attacks",
    "strongest",
    "row_key",
    "seed",
    "created",
]
Part = tuple[str, np.ndarray, np.ndarray]  # (attack, image indices, robust)


def _on(images: np.ndarray, idx: np.ndarray, flags: np.ndarray) -> np.ndarray:
    """A record's flags at `images`, which must all be among its indices."""
    order = np.argsort(idx, kind="stable")
    return flags[order][np.searchsorted(idx[order], images)]


def combine(parts: list[Part], clean: Record | None = None) -> tuple[np.ndarray, np.ndarray, str]:
    """(shared image indices, robust under every attack, the attacks that broke the most of them,
    joined by commas; '' when none broke any) from (attack, indices, robust) records. With the
    clean record, only images right on clean count as broken (the others no attack needs to)."""
    shared = reduce(np.intersect1d, [idx for _, idx, _ in parts])
    right = np.ones(len(shared), dtype=bool)
    if clean is not None and np.isin(shared, clean[0]).all():
        right = _on(shared, *clean)
    robust = np.ones(len(shared), dtype=bool)
    broken: dict[str, int] = {}
    for name, idx, ok in parts:
        got = _on(shared, idx, ok)
        robust &= got
        broken[name] = max(broken.get(name, 0), int((~got & right).sum()))
    top = max(broken.values())
    strongest = ", ".join(sorted(k for k, v in broken.items() if v == top)) if top else ""
    return shared, robust, strongest


def comparable(attacks: Sequence[object]) -> list[bool]:
    """Which best-known figures may be ranked against each other: those that include AutoAttack,
    the standard evaluation, where any does (without it a figure is an upper bound on a looser
    footing); all measured ones otherwise."""
    sets = [a if isinstance(a, tuple) else () for a in attacks]
    with_aa = [STANDARD in a for a in sets]
    return with_aa if any(with_aa) else [bool(a) for a in sets]


def at_headline(best: pd.DataFrame) -> pd.DataFrame:
    """The best-known rows at the headline radius, L∞."""
    return best[((best.epsilon - HEADLINE_EPS).abs() < 1e-9) & (best.norm == "linf")]


def _rows(df: pd.DataFrame, kind: str) -> pd.DataFrame:
    """Every row of a kind (strict attacks, or clean), each cell variant at its newest scoring."""
    d = df[(df.kind == kind) & ((df.protocol == "strict") | (kind == "clean"))]
    d = d.sort_values(["scoring", "created"], kind="stable")
    return d.drop_duplicates([c for c in KEY if c != "scoring"], keep="last")


def _key(cell: tuple) -> str:  # type: ignore[type-arg]
    return "best:" + hashlib.sha256(repr(cell).encode()).hexdigest()[:16]


def table(df: pd.DataFrame, images: Records) -> tuple[pd.DataFrame, Records]:
    """Best-known rows (CELL and COLUMNS) and their per-image records; cells whose rows lack
    records are left out."""
    clean = {
        (r.dataset, r.model, r.weights, r.exit): images.get(r.row_key)
        for r in _rows(df, "clean").itertuples()
    }
    rows, recs = [], {}
    for cell, g in _rows(df, "attack").groupby(CELL):
        if not all(k in images for k in g.row_key):
            continue
        parts = [
            (attack_name(r.condition, int(r.steps)), *images[r.row_key]) for r in g.itertuples()
        ]
        shared, robust, strongest = combine(parts, clean.get(cell[:4]))
        if not len(shared):
            continue
        recs[_key(cell)] = (shared, robust)
        rows.append(
            dict(
                zip(CELL, cell),
                n_correct=int(robust.sum()),
                n_images=len(shared),
                accuracy=float(robust.mean()),
                attacks=tuple(sorted({p[0] for p in parts})),
                strongest=strongest,
                row_key=_key(cell),
                seed=int(g.seed.max()),
                created=str(g.created.max()),
            )
        )
    return pd.DataFrame(rows, columns=[*CELL, *COLUMNS]), recs


def joined(df: pd.DataFrame, images: Records) -> tuple[pd.DataFrame, Records]:
    """The best-known rows, and the run's records with theirs joined (computed once per report)."""
    best, extra = table(df, images)
    return best, {**images, **extra}
