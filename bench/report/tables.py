"""Tables derived from the results CSV (pandas only)."""
from __future__ import annotations

from pathlib import Path

import pandas as pd

from bench.results import COLUMNS, read_rows


def load_results(path: Path) -> pd.DataFrame:
    """The results CSV as a frame with the schema's types (validated by bench.results)."""
    from bench.per_image import row_key

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


KEY = ["model", "weights", "dataset", "subset", "kind", "condition", "source", "protocol", "severity", "norm",
       "epsilon", "steps", "step_size", "restarts", "params", "exit", "seed", "precision"]


ATTACK_VARIANT = ["source", "steps", "step_size", "restarts", "params"]  # how an attack was run, not what it is


def latest(df: pd.DataFrame) -> pd.DataFrame:
    """One row per key, the most recently written; for attacks also one per attack, norm, ε and exit.

    A results file that runs appended to holds rows of earlier attack variants (another backend,
    step count, or PGD before early stopping); tables show one number per cell, the newest one's.
    """
    d = df.sort_values("created").drop_duplicates(KEY, keep="last")
    attack = d.kind == "attack"
    what = [c for c in KEY if c not in ATTACK_VARIANT]
    return pd.concat([d[~attack], d[attack].drop_duplicates(what, keep="last")]).sort_values("created", kind="stable")


def clean_table(df: pd.DataFrame) -> pd.DataFrame:
    """Per model and exit: GMACs, parameters and clean accuracy (latest row per key wins)."""
    clean = df[df.kind == "clean"]
    if clean.empty:
        return clean
    cols = ["model", "family", "exit", "exits_total", "gmacs", "params_m", "accuracy", "n_images",
            "weights", "dataset", "seed"]
    t = clean.sort_values("created").drop_duplicates(["model", "weights", "dataset", "subset", "exit", "seed"],
                                                     keep="last")[cols]
    return t.sort_values(["family", "model", "exit"]).reset_index(drop=True)
