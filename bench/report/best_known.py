"""Best-known robust accuracy: an image counts as robust only if it survived every attack run on it
(torch-free).

Per (data set, model, weights, exit, norm, ε), over the strict attacks of a run folder (FGSM, PGD,
AutoAttack, transfer and the adaptive attacks), on the images every one of them ran on, from
per_image.csv. Its records join the run's under a `best:` key, so the significance tests pair it
with single attacks on the same images like any other row.
"""

from __future__ import annotations

import hashlib
from functools import reduce

import numpy as np
import pandas as pd

from bench.report.tables import latest
from bench.store.per_image import Records

STANDARD = "AutoAttack"
CELL = ["dataset", "model", "weights", "exit", "norm", "epsilon"]
NAMES = {
    "fgsm": "FGSM",
    "autoattack": "AutoAttack",
    "transfer_pgd": "transfer PGD",
    "bpda_pgd": "BPDA",
    "eot_pgd": "EOT",
    "look_pgd": "misdirection",
    "smooth_transfer": "smooth transfer",
}


def attack_name(condition: str, steps: int) -> str:
    """How a report names an attack: 'PGD-10', 'BPDA', 'AutoAttack'."""
    return f"PGD-{steps}" if condition == "pgd" else NAMES.get(condition, condition)


Part = tuple[str, np.ndarray, np.ndarray]  # (attack, image indices, robust)


def combine(records: list[Part]) -> tuple[np.ndarray, np.ndarray, str]:
    """(shared image indices, robust under every attack, the attacks that broke the most of them,
    joined by commas) from (attack, indices, robust) records; '' when none breaks any image."""
    shared = reduce(np.intersect1d, [idx for _, idx, _ in records])
    robust = np.ones(len(shared), dtype=bool)
    broken: dict[str, int] = {}
    for name, idx, ok in records:
        order = np.argsort(idx, kind="stable")
        got = ok[order][np.searchsorted(idx[order], shared)]
        robust &= got
        broken[name] = max(broken.get(name, 0), int((~got).sum()))
    top = max(broken.values())
    strongest = ", ".join(sorted(k for k, v in broken.items() if v == top)) if top else ""
    return shared, robust, strongest


def comparable(attacks: list[object]) -> list[bool]:
    """Which best-known figures may be ranked against each other: those that include AutoAttack,
    the standard evaluation, where any does (without it a figure is an upper bound on a looser
    footing); all measured ones otherwise."""
    sets = [a if isinstance(a, tuple) else () for a in attacks]
    with_aa = [STANDARD in a for a in sets]
    return with_aa if any(with_aa) else [bool(a) for a in sets]


def _key(cell: tuple) -> str:  # type: ignore[type-arg]
    return "best:" + hashlib.sha256(repr(cell).encode()).hexdigest()[:16]


def table(df: pd.DataFrame, images: Records) -> tuple[pd.DataFrame, Records]:
    """Best-known rows (CELL, n_correct, n_images, accuracy, attacks, strongest, row_key, seed,
    created) and their per-image records; cells whose rows lack records are left out."""
    att = latest(df[(df.kind == "attack") & (df.protocol == "strict")])
    rows, recs = [], {}
    for cell, g in att.groupby(CELL):
        if not all(k in images for k in g.row_key):
            continue
        parts = [
            (attack_name(r.condition, int(r.steps)), *images[r.row_key]) for r in g.itertuples()
        ]
        shared, robust, strongest = combine(parts)
        if not len(shared):
            continue
        key = _key(cell)
        recs[key] = (shared, robust)
        rows.append(
            dict(
                zip(CELL, cell),
                n_correct=int(robust.sum()),
                n_images=len(shared),
                accuracy=float(robust.mean()),
                attacks=tuple(sorted({p[0] for p in parts})),
                strongest=strongest,
                row_key=key,
                seed=int(g.seed.max()),
                created=str(g.created.max()),
            )
        )
    return pd.DataFrame(rows, columns=[*CELL, *COLUMNS]), recs


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
