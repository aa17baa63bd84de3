"""Markdown formatting shared by the report sections."""

from __future__ import annotations

import math

import pandas as pd


def md_table(df: pd.DataFrame) -> str:
    """A GitHub-flavoured markdown table of a frame's values as shown."""
    head = "| " + " | ".join(map(str, df.columns)) + " |"
    sep = "|" + "|".join("---" for _ in df.columns) + "|"
    return "\n".join(
        [
            head,
            sep,
            *("| " + " | ".join(str(v) for v in r) + " |" for r in df.itertuples(index=False)),
        ]
    )


def pgd_name(rows: pd.DataFrame) -> str:
    """ "PGD-k" if all PGD rows ran k steps (the suites' PGD-10, smoke's PGD-2), else "PGD"."""
    steps = sorted({int(s) for s in rows[rows.condition == "pgd"].steps})
    return f"PGD-{steps[0]}" if len(steps) == 1 else "PGD"


ATTACK_NAMES = {
    "fgsm": "FGSM",
    "autoattack": "AutoAttack",
    "transfer_pgd": "transfer PGD",
    "bpda_pgd": "BPDA",
    "eot_pgd": "EOT",
    "look_pgd": "misdirection",
    "smooth_transfer": "smooth transfer",
    "exit_union_pgd": "exit-union PGD",
    "slowdown_pgd": "slow-down PGD",
}


def attack_name(condition: str, steps: int) -> str:
    """How a report names an attack: 'PGD-10', 'BPDA', 'AutoAttack'."""
    return f"PGD-{steps}" if condition == "pgd" else ATTACK_NAMES.get(condition, condition)


def pct(v: float | None, best: float | None = None) -> str:
    """A fraction as a percentage with one decimal, bold when it equals `best`; '–' when missing."""
    if v is None or (isinstance(v, float) and math.isnan(v)) or pd.isna(v):
        return "–"
    s = f"{100 * v + 1e-9:.1f}"  # half up: 605/2000 shows 30.3, not the binary float's 30.2
    return f"**{s}**" if best is not None and v == best else s
