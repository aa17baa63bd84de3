"""The report's common-corruption section: mCE summary, per-corruption table, heatmaps, curves."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd

from bench.core.card import file_stem
from bench.report import figures
from bench.report.fmt import md_table, pct
from bench.report.metrics import COMMON, errors, mce, relative_mce
from bench.report.tables import latest, origin


def pick_baseline(df: pd.DataFrame, wanted: str | None) -> str | None:
    """The mCE reference among one data set's corruption rows.

    The named model (None when it has no rows there), else the run's ResNet baseline, else the
    official baseline. `bench report` checks that a named one exists.
    """
    if wanted:
        return wanted if wanted in set(df.model) else None
    for family in ("resnet", "mgbase"):
        fam = df[df.family == family].model.unique()
        if len(fam):
            return str(sorted(fam)[0])
    return None


def _clean_error(
    df: pd.DataFrame, model: str, ex: int, subset_rows: pd.DataFrame, images: dict | None
) -> float:  # type: ignore[type-arg]
    """Clean error on the corruption rows' images (per-image records), else on the clean rows."""
    clean = df[(df.kind == "clean") & (df.model == model) & (df.exit == ex)]
    if clean.empty:
        return math.nan
    c = clean.iloc[-1]
    if images and c.row_key in images and len(subset_rows):
        cid, cok = images[c.row_key]
        r = subset_rows.iloc[0]
        if r.row_key in images:
            idx = images[r.row_key][0]
            pos = np.searchsorted(cid, idx)
            if np.all(pos < len(cid)) and np.array_equal(cid[np.minimum(pos, len(cid) - 1)], idx):
                return 1.0 - float(cok[pos].mean())
    return 1.0 - float(c.accuracy)


def _reference(full: pd.DataFrame, ref_name: str | None) -> tuple[int, pd.DataFrame]:
    """The mCE baseline's exit (its last in the rows) and its rows there; (0, empty) without one."""
    rows = full[full.model == ref_name] if ref_name else full.iloc[0:0]
    ex = int(rows.exit.max()) if len(rows) else 0
    return ex, rows[rows.exit == ex]


def headline(df: pd.DataFrame, baseline: str | None) -> pd.DataFrame:
    """Per (model, exit): mean corruption accuracy and mCE of the generated sweep, else rendered."""
    cor = latest(df[df.kind == "corruption"])
    cor = cor[cor.condition.isin(COMMON)]
    if cor.empty:
        return pd.DataFrame(columns=["model", "exit", "corruption_acc", "mce", "seeds"])
    cor = cor[
        origin(cor.source) == sorted(origin(cor.source).unique())[0]
    ]  # "generated" sorts first
    ref_err = errors(_reference(cor, pick_baseline(cor, baseline))[1])
    rows = [
        {
            "model": m,
            "exit": e,
            "corruption_acc": g.accuracy.mean() if len(g) == 75 else math.nan,
            "mce": mce(errors(g), ref_err)[0] if ref_err else math.nan,
            "seeds": tuple(sorted(g.seed.unique())),
        }
        for (m, e), g in cor.groupby(["model", "exit"])
    ]
    return pd.DataFrame(rows)


def section(
    df: pd.DataFrame, run_dir: Path, baseline: str | None, images: dict | None
) -> list[str]:  # type: ignore[type-arg]
    cor = latest(df[df.kind == "corruption"])
    if cor.empty:
        return [
            "## Common corruptions",
            "",
            "No corruption rows in this run (use `--suite corruptions` or `default`).",
            "",
        ]
    lines = ["## Common corruptions", ""]
    several = cor.dataset.nunique() > 1
    for dataset, dg in cor.groupby("dataset"):
        lines += _dataset_section(
            df[df.dataset == dataset],
            dg,
            run_dir,
            baseline,
            images,
            f"{dataset}, " if several else "",
            f"_{file_stem(dataset)}" if several else "",
        )
    if (run_dir / "examples" / "corruptions.png").is_file():
        lines += [
            "Example (one test image; columns: clean, severities 1–5):",
            "",
            "![corruption examples](examples/corruptions.png)",
            "",
        ]
    return lines


def _dataset_section(
    df: pd.DataFrame,
    cor: pd.DataFrame,
    run_dir: Path,
    baseline: str | None,
    images: dict | None,
    heading: str,
    stem: str,
) -> list[str]:  # type: ignore[type-arg]
    """One data set's tables and figures per origin (generated or rendered); `df` is its rows."""
    lines: list[str] = []
    ref_name = pick_baseline(cor, baseline)
    for source, g in cor.groupby(origin(cor.source)):
        full = g[g.condition.isin(COMMON)]
        ref_exit, ref_rows = _reference(full, ref_name)
        ref_here = (
            ref_name if len(ref_rows) else None
        )  # the baseline may have rows of the other origin only
        ref_err = errors(ref_rows)
        ref_clean = _clean_error(df, ref_name, ref_exit, ref_rows, images) if ref_here else math.nan
        rows = []
        per_corr = []
        for (model, ex), m in full.groupby(["model", "exit"]):
            err = errors(m)
            complete = len(m) == 75
            mce_v, _ = mce(err, ref_err) if ref_here else (math.nan, {})
            clean_err = _clean_error(df, model, ex, m, images)
            if not ref_here:
                rel, why = math.nan, "no baseline"
            elif math.isnan(clean_err) or math.isnan(ref_clean):
                rel, why = (
                    math.nan,
                    f"no clean rows for `{model if math.isnan(clean_err) else ref_name}`",
                )
            else:
                rel, why = relative_mce(err, clean_err, ref_err, ref_clean)
            rows.append(
                {
                    "model": model,
                    "exit": f"{ex}/{int(m.exits_total.iloc[0])}",
                    "GMACs": f"{m.gmacs.iloc[0]:.4g}",
                    "clean (%)": pct(1 - clean_err),
                    "mean corruption acc (%)": pct(m.accuracy.mean())
                    + ("" if complete else " (partial)"),
                    "mCE": "–" if math.isnan(mce_v) else f"{mce_v:.1f}",
                    "relative mCE": "–" if math.isnan(rel) else f"{rel:.1f}",
                    "_acc": m.accuracy.mean() if complete else math.nan,
                    "_why": why,
                }
            )
            per_corr.append(
                {
                    "model": model,
                    "exit": ex,
                    **{c: pct(m[m.condition == c].accuracy.mean()) for c in COMMON},
                }
            )
        table = pd.DataFrame(rows)
        best = table._acc.max()  # among complete sweeps: a partial one is not ranked
        table["mean corruption acc (%)"] = [
            f"**{v}**" if a == best else v
            for v, a in zip(table["mean corruption acc (%)"], table._acc)
        ]
        whys = sorted({w for w in table._why if w})
        n = int(full.n_images.max())
        per_source = g.drop_duplicates(["condition", "severity", "source"]).groupby("source").size()
        mix = ", ".join(f"{v} by {k}" for k, v in per_source.items())
        title = (
            "pre-rendered files" if source == "rendered" else "generated on the fly"
        ) + f" ({mix} conditions)"
        lines += [
            f"### {heading}{title}, {n} images per condition",
            "",
            md_table(table.drop(columns=["_acc", "_why"])),
            "",
            "Mean corruption accuracy = plain mean over the 15 corruptions × 5 severities. "
            + (
                f"mCE and relative mCE are normalised by `{ref_name}` (exit {ref_exit}) of this "
                "run (= 100 for "
                "it); the AlexNet table applies only to ImageNet-1k."
                if ref_here
                else (
                    f"No mCE: the baseline `{ref_name or baseline}` has no corruption rows here."
                    if ref_name or baseline
                    else "No mCE: no baseline model in this run (a ResNet, the one-glimpse "
                    "baseline or `--baseline`)."
                )
            )
            + (f" Relative mCE not defined: {whys[0]}." if whys and ref_here else ""),
            "",
            "Accuracy (%) per corruption, mean over severities:",
            "",
            md_table(pd.DataFrame(per_corr)),
            "",
        ]
        last = full[full.exit == full.exits_total]
        for model, m in last.groupby("model"):
            fig = figures.corruption_heatmap(
                m,
                run_dir / "figures" / f"corruption_heatmap{stem}_{source}_{file_stem(model)}.png",
                f"{model} (exit {int(m.exit.iloc[0])}): accuracy under corruption",
            )
            lines += [f"![{model} heatmap]({fig.relative_to(run_dir).as_posix()})", ""]
        mean = (
            full.groupby(["model", "exit"])
            .agg(
                accuracy=("accuracy", "mean"), gmacs=("gmacs", "first"), family=("family", "first")
            )
            .reset_index()
        )
        fig = figures.accuracy_vs_gmacs(
            mean,
            run_dir / "figures" / f"corruption_accuracy_vs_gmacs{stem}_{source}.png",
            "Mean corruption accuracy vs compute",
        )
        lines += [f"![corruption accuracy vs GMACs]({fig.relative_to(run_dir).as_posix()})", ""]
    return lines
