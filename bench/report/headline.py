"""The headline table: compute, speed, clean, corruption and attack numbers per model and exit."""

from __future__ import annotations

import math

import pandas as pd

from bench.core.conditions import HEADLINE_EPS
from bench.report import best_known, corruption_section, significance
from bench.report.fmt import md_table, pct, pgd_name
from bench.report.stats import pct_interval
from bench.report.tables import latest
from bench.store.per_image import Records

# column -> (format, or None for a percentage shown by fmt.pct; True when lower is better)
COLUMNS = {
    "GMACs": ("{:.4g}", True),
    "params (M)": ("{:.3f}", True),
    "latency (ms)": ("{:.2f}", True),
    "throughput (img/s)": ("{:,.0f}", False),
    "clean (%)": (None, False),
    "mean corruption acc (%)": (None, False),
    "mCE": ("{:.1f}", True),
    "PGD-10 L∞ 4/255 (%)": (None, False),
    "AutoAttack L∞ 4/255 (%)": (None, False),
    "best-known L∞ 4/255 (%)": (None, False),
}
BEST = "best-known L∞ 4/255 (%)"


SEEDED = [c for c in COLUMNS if c not in ("GMACs", "params (M)")]
SPEEDS = ("latency (ms)", "throughput (img/s)")
COUNTS = ("n_correct", "n_images", "row_key")
# Timings of one run vary by 10–30 % on a busy CPU: a best speed is marked only if clearly ahead.
SPEED_MARGIN = 1.3
CORRUPTION = significance.CORRUPTION
CAPTION = (
    "Accuracies in % with their 95 % interval (Wilson; for the mean over corruptions, a normal "
    "interval over images). Bold: the best, and any accuracy not significantly different from it "
    "at p ≥ 0.05 (McNemar's exact test on the same images, or disjoint intervals without "
    "per-image records; for the mean over corruptions a paired test over images, and no mark "
    "without records; no multiple-comparison correction), "
    "so several bold entries are a tie and none means no accuracy stands out; the lowest GMACs "
    "and parameters; a speed only if 1.3× ahead of the next (timing noise). mCE is not marked. "
    "Best-known: an image counts as robust only if it survived every strict attack run on it at "
    "4/255, on the images all of them ran on (see Adversarial robustness); * marks one without "
    "AutoAttack where others include it: an upper bound from weaker attacks, never in bold."
)


def values(
    df: pd.DataFrame, baseline: str | None, best: pd.DataFrame | None = None
) -> pd.DataFrame:
    """Values (NaN if unmeasured) per dataset, model and exit, with their seeds (`seeds COLUMN`);
    `best`: best_known.table's rows."""
    d = latest(df)
    base = d.sort_values("created").drop_duplicates(["dataset", "model", "exit"], keep="last")
    out = base[["dataset", "family", "model", "exit", "exits_total", "gmacs", "params_m"]].copy()
    out = out.rename(columns={"gmacs": "GMACs", "params_m": "params (M)"})

    def put(column: str, rows: pd.DataFrame, value: str) -> None:
        s = rows.sort_values("created").drop_duplicates(["dataset", "model", "exit"], keep="last")
        got = out.merge(
            s[["dataset", "model", "exit", value, "seed", "created", *COUNTS]],
            how="left",
            on=["dataset", "model", "exit"],
        )
        out[column] = got[value].values
        for c in COUNTS:
            out[f"{c} {column}"] = got[c].values
        out[f"seeds {column}"] = [
            () if pd.isna(v) else (int(k),) for v, k in zip(got[value], got.seed)
        ]
        out[f"run {column}"] = [None if pd.isna(v) else c for v, c in zip(got[value], got.created)]

    clean = d[d.kind == "clean"]
    put("latency (ms)", clean, "latency_ms")
    put("throughput (img/s)", clean, "throughput")
    put("clean (%)", clean, "accuracy")
    att = d[(d.kind == "attack") & ((d.epsilon - HEADLINE_EPS).abs() < 1e-9) & (d.norm == "linf")]
    put(
        "PGD-10 L∞ 4/255 (%)",
        att[(att.condition == "pgd") & (att.protocol == "strict")],
        "accuracy",
    )
    put("AutoAttack L∞ 4/255 (%)", att[att.condition == "autoattack"], "accuracy")
    b = best if best is not None else pd.DataFrame(columns=[*best_known.CELL, *best_known.COLUMNS])
    b = best_known.at_headline(b)
    put(BEST, b, "accuracy")
    got = out.merge(
        b[["dataset", "model", "exit", "attacks"]], how="left", on=["dataset", "model", "exit"]
    )
    out[f"attacks {BEST}"] = got.attacks.values
    out["mean corruption acc (%)"] = math.nan
    out["mCE"] = math.nan
    out["seeds mean corruption acc (%)"] = [()] * len(out)
    out["row_key mean corruption acc (%)"] = [()] * len(out)
    for dataset, g in d.groupby("dataset"):
        h = corruption_section.headline(g, baseline)
        for r in h.itertuples():
            at = (out.dataset == dataset) & (out.model == r.model) & (out.exit == r.exit)
            out.loc[at, ["mean corruption acc (%)", "mCE"]] = [r.corruption_acc, r.mce]
            for i in out.index[at]:
                out.at[i, "seeds mean corruption acc (%)"] = tuple(int(k) for k in r.seeds)
                out.at[i, "row_key mean corruption acc (%)"] = r.row_keys
    out["seeds mCE"] = [
        s if pd.notna(v) else () for s, v in zip(out["seeds mean corruption acc (%)"], out.mCE)
    ]
    return out.sort_values(["dataset", "family", "model", "exit"]).reset_index(drop=True)


def seed_note(t: pd.DataFrame, label: dict[str, str] | None = None) -> str:
    """Which seed each column's numbers come from, if a table mixes several seeds ('' otherwise)."""
    per = {c: sorted({k for ks in t[f"seeds {c}"] for k in ks}) for c in SEEDED}
    if len({k for ks in per.values() for k in ks}) < 2:
        return ""
    groups: dict[tuple[int, ...], list[str]] = {}
    for c, ks in per.items():
        if ks:
            groups.setdefault(tuple(ks), []).append((label or {}).get(c, c))
    parts = [
        f"seed{'s' if len(ks) > 1 else ''} {', '.join(map(str, ks))}: {', '.join(cs)}"
        for ks, cs in sorted(groups.items())
    ]
    return f"Columns come from runs with different seeds ({'; '.join(parts)}). "


def _timing(df: pd.DataFrame, runs: list[str]) -> str:
    """How latency and throughput were timed, and whether the table may compare them."""
    devices = ", ".join(sorted(df[df.latency_ms.notna()].device.unique()))
    if not runs:
        return "Latency and throughput were not timed in this run."
    how = (
        "Latency: median batch-1 forward pass up to the exit; throughput: best over batch sizes "
        f"1, 2, 4, …; both measured on {devices}."
    )
    if len(runs) == 1:
        return how
    return (
        f"{how} They come from {len(runs)} runs started at {', '.join(runs)} (UTC), timed at "
        "different times under different loads, so they are not compared (none in bold): run the "
        "models together into a new folder to compare their speeds."
    )


def _speed_marks(s: pd.Series, lower: bool) -> set[int]:
    """The best speed, if it leads the next by SPEED_MARGIN (timing noise is not a difference)."""
    ranked = s.dropna().sort_values(ascending=lower)
    if len(ranked) < 2:
        return set()
    a, b = ranked.iloc[0], ranked.iloc[1]
    ahead = b / a if lower else a / b
    return {int(ranked.index[0])} if ahead >= SPEED_MARGIN else set()


def _format(v: float, column: str, t: pd.Series, images: Records) -> str:
    """A value as shown: an accuracy with its 95 % interval, others by the column's format."""
    if v is None or pd.isna(v):
        return "–"
    fmt = COLUMNS[column][0]
    if column == CORRUPTION:
        lo, hi = significance.corruption_interval(t, images)
        return f"{100 * v + 1e-9:.1f}" + ("" if pd.isna(lo) else f" ({pct(lo)}–{pct(hi)})")
    if fmt is None:
        shown = pct_interval(int(t[f"n_correct {column}"]), int(t[f"n_images {column}"]))
        return shown + ("*" if column == BEST and not t[f"ranked {BEST}"] else "")
    return fmt.format(v)


def _marks(t: pd.DataFrame, column: str, runs: list[str], images: Records) -> set[int]:
    """Rows shown in bold: the exact best of a count, a speed clearly ahead, or an accuracy that is
    best or statistically tied with the best (none where every row is tied)."""
    s, lower = t[column], COLUMNS[column][1]
    if column == "mCE" or s.notna().sum() < 2:
        return set()
    if column in SPEEDS:
        return _speed_marks(s, lower) if len(runs) == 1 else set()
    if column == CORRUPTION:
        return significance.bold_corruption(list(s), list(t[f"row_key {column}"]), images)
    if column not in ("GMACs", "params (M)"):
        k, n, keys = (list(t[f"{c} {column}"]) for c in COUNTS)
        if column == BEST:
            k = [v if ok else math.nan for v, ok in zip(k, t[f"ranked {BEST}"])]
        return significance.bold_counts(k, n, keys, images)
    tied = {i for i, v in s.items() if v == s.min()}
    return set() if len(tied) == s.notna().sum() else tied


def section(
    df: pd.DataFrame,
    baseline: str | None,
    images: Records | None = None,
    best: pd.DataFrame | None = None,
) -> list[str]:
    """Markdown lines of the headline table (one per data set), the significant best in bold.

    `images` (per_image.csv's records) pairs accuracies on the same images; without them two
    accuracies differ only where their intervals do not overlap. `best` and its records in
    `images` come from best_known.joined (computed here when not given).
    """
    if best is None:
        best, images = best_known.joined(df, images or {})
    v = values(df, baseline, best)
    lines = ["## Headline", ""]
    for dataset, t in v.groupby("dataset"):
        d = df[
            (df.dataset == dataset)
            & (df.kind == "attack")
            & (df.norm == "linf")
            & (df.protocol == "strict")
            & ((df.epsilon - HEADLINE_EPS).abs() < 1e-9)
        ]
        # smoke and --pgd-steps run other counts
        label = {c: c.replace("PGD-10", pgd_name(d)) for c in COLUMNS}
        shown = pd.DataFrame(
            {"model": t.model, "exit": [f"{e}/{n}" for e, n in zip(t.exit, t.exits_total)]}
        )
        runs = sorted({r for r in t["run latency (ms)"] if isinstance(r, str)})
        t = t.reset_index(drop=True)
        t[f"ranked {BEST}"] = best_known.comparable(list(t[f"attacks {BEST}"]))
        for c in COLUMNS:
            marks = _marks(t, c, runs, images or {})
            cells = [_format(t.at[i, c], c, t.loc[i], images or {}) for i in t.index]
            shown[label[c]] = [f"**{x}**" if i in marks else x for i, x in enumerate(cells)]
        timing = _timing(df[df.dataset == dataset], runs)
        lines += [
            f"### {dataset}",
            "",
            md_table(shown),
            "",
            (
                f"{CAPTION} – = not measured in this run. {timing} mCE against the run's "
                "baseline (see Common corruptions); robust accuracy under the strict protocol. "
                f"{seed_note(t, label)}"
            ).rstrip(),
            "",
        ]
    return lines
