"""Tables derived from the results CSV (pandas only)."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from bench.store.results import COLUMNS, read_rows


def load_results(path: Path) -> pd.DataFrame:
    """The results CSV as a frame with the schema's types (validated by bench.store.results)."""
    from bench.store.per_image import row_key

    rows = read_rows(path)
    df = pd.DataFrame([[getattr(r, c) for c in COLUMNS] for r in rows], columns=list(COLUMNS))
    df["row_key"] = [row_key(r) for r in rows]
    return df


def pareto_front(df: pd.DataFrame, cost: str = "gmacs", value: str = "accuracy") -> pd.DataFrame:
    """Rows no other row beats on both lower cost and higher value, by increasing cost."""
    d = df.sort_values([cost, value], ascending=[True, False])
    keep, best = [], -float("inf")
    for i, v in zip(d.index, d[value]):
        if v > best:
            keep.append(i)
            best = v
    return d.loc[keep]


KEY = [
    "model",
    "weights",
    "dataset",
    "subset",
    "kind",
    "condition",
    "source",
    "protocol",
    "severity",
    "norm",
    "epsilon",
    "steps",
    "step_size",
    "restarts",
    "params",
    "exit",
    "seed",
    "precision",
    "scoring",
]


# How and on what a cell was run, not what it measures: rows differing only in these are earlier
# variants of one cell (another backend, step count or early stopping; another image subset, seed or
# precision; an older scoring).
VARIANT = [
    "source",
    "steps",
    "step_size",
    "restarts",
    "params",
    "subset",
    "seed",
    "precision",
    "scoring",
]


def origin(source: pd.Series) -> pd.Series:
    """One sweep per origin: generated (reference and parity-tested torch mixed) or from files."""
    return source.map(lambda s: "rendered" if s == "rendered" else "generated")


def latest(df: pd.DataFrame) -> pd.DataFrame:
    """One row per cell (model, weights, data set, condition with its ε, norm, protocol and
    severity, exit): the most recently written of the newest scoring.

    A results file that several runs appended to holds rows of earlier variants of a cell (another
    backend, step count, image subset, seed or precision, or PGD before early stopping); tables show
    one number per cell, the newest one's, so no table mixes two runs of one cell. Pre-rendered
    corruption files stay apart from images generated on the fly.
    """
    d = df.sort_values(["scoring", "created"], kind="stable").assign(_origin=origin(df.source))
    what = [c for c in KEY if c not in VARIANT] + ["_origin"]
    return d.drop_duplicates(what, keep="last").drop(columns="_origin")


def current(df: pd.DataFrame) -> pd.DataFrame:
    """The rows of each model's newest weights per data set: a model retrained and evaluated again
    into the same results file is shown with its new weights only."""
    newest = df.sort_values("created", kind="stable").groupby(["model", "dataset"]).weights.last()
    keep = [newest[(m, d)] == w for m, d, w in zip(df.model, df.dataset, df.weights)]
    return df[keep]


def clean_table(df: pd.DataFrame) -> pd.DataFrame:
    """Per model and exit: GMACs, parameters and clean accuracy (latest row per key wins)."""
    clean = df[df.kind == "clean"]
    if clean.empty:
        return clean
    cols = [
        "model",
        "family",
        "exit",
        "exits_total",
        "gmacs",
        "params_m",
        "accuracy",
        "n_correct",
        "n_images",
        "row_key",
        "weights",
        "dataset",
        "seed",
    ]
    t = latest(clean)[cols]
    return t.sort_values(["family", "model", "exit"]).reset_index(drop=True)
