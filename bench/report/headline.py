"""The headline table: per model and exit, compute, speed, clean, corruption and attack numbers side by side."""
from __future__ import annotations

import math

import pandas as pd

from bench.conditions import HEADLINE_EPS
from bench.report import corruption_section
from bench.report.fmt import md_table, pct
from bench.report.tables import latest

# column -> (format, or None for a percentage shown by fmt.pct; True when lower is better)
COLUMNS = {
    "GMACs": ("{:.4g}", True), "params (M)": ("{:.3f}", True), "latency (ms)": ("{:.2f}", True),
    "throughput (img/s)": ("{:,.0f}", False), "clean (%)": (None, False),
    "mean corruption acc (%)": (None, False), "mCE": ("{:.1f}", True),
    "PGD-10 L∞ 4/255 (%)": (None, False), "AutoAttack L∞ 4/255 (%)": (None, False),
}


def values(df: pd.DataFrame, baseline: str | None) -> pd.DataFrame:
    """Numbers (NaN where not measured) per dataset, model and exit."""
    d = latest(df)
    base = d.sort_values("created").drop_duplicates(["dataset", "model", "exit"], keep="last")
    out = base[["dataset", "family", "model", "exit", "exits_total", "gmacs", "params_m"]].copy()
    out = out.rename(columns={"gmacs": "GMACs", "params_m": "params (M)"})

    def col(rows: pd.DataFrame, value: str) -> pd.Series:
        s = rows.sort_values("created").drop_duplicates(["dataset", "model", "exit"], keep="last")
        return out.merge(s[["dataset", "model", "exit", value]], how="left", on=["dataset", "model", "exit"])[value].values

    clean = d[d.kind == "clean"]
    out["latency (ms)"] = col(clean, "latency_ms")
    out["throughput (img/s)"] = col(clean, "throughput")
    out["clean (%)"] = col(clean, "accuracy")
    att = d[(d.kind == "attack") & ((d.epsilon - HEADLINE_EPS).abs() < 1e-9) & (d.norm == "linf")]
    out["PGD-10 L∞ 4/255 (%)"] = col(att[(att.condition == "pgd") & (att.protocol == "strict")], "accuracy")
    out["AutoAttack L∞ 4/255 (%)"] = col(att[att.condition == "autoattack"], "accuracy")
    out["mean corruption acc (%)"] = math.nan
    out["mCE"] = math.nan
    for dataset, g in d.groupby("dataset"):
        h = corruption_section.headline(g, baseline)
        for r in h.itertuples():
            at = (out.dataset == dataset) & (out.model == r.model) & (out.exit == r.exit)
            out.loc[at, ["mean corruption acc (%)", "mCE"]] = [r.corruption_acc, r.mce]
    return out.sort_values(["dataset", "family", "model", "exit"]).reset_index(drop=True)


def _cell(v: float, column: str, best: float) -> str:
    if v is None or pd.isna(v):
        return "–"
    fmt = COLUMNS[column][0]
    if fmt is None:
        return pct(v, best)
    s = fmt.format(v)
    return f"**{s}**" if v == best else s


def section(df: pd.DataFrame, baseline: str | None) -> list[str]:
    """Markdown lines of the headline table (one per data set), best per column in bold."""
    v = values(df, baseline)
    lines = ["## Headline", ""]
    for dataset, t in v.groupby("dataset"):
        shown = pd.DataFrame({"model": t.model, "exit": [f"{e}/{n}" for e, n in zip(t.exit, t.exits_total)]})
        for c, (_, lower) in COLUMNS.items():
            s = t[c].dropna()
            best = (s.min() if lower else s.max()) if len(s) > 1 else None
            shown[c] = [_cell(x, c, best) for x in t[c]]
        devices = ", ".join(sorted(df[(df.dataset == dataset) & df.latency_ms.notna()].device.unique()))
        timing = (f"Latency: median batch-1 forward pass up to the exit; throughput: best over batch sizes 1, 2, 4, …; "
                  f"both measured on {devices}." if devices else "Latency and throughput were not timed in this run.")
        lines += [f"### {dataset}", "", md_table(shown), "",
                  f"Best per column in bold (lowest GMACs, parameters, latency and mCE; highest otherwise); – = not "
                  f"measured in this run. {timing} mCE against the run's baseline (see "
                  "Common corruptions); robust accuracy under the strict protocol.", ""]
    return lines
