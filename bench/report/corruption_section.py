"""The report's common-corruption section: mCE summary, per-corruption table, heatmaps, curves."""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from bench.core.card import file_stem
from bench.report import figures, significance, stats
from bench.report.fmt import md_table, pct
from bench.report.metrics import COMMON, errors, mce, relative_mce
from bench.report.tables import latest, origin
from bench.store.per_image import Records


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


def _clean_counts(
    df: pd.DataFrame, model: str, ex: int, subset_rows: pd.DataFrame, images: Records | None
) -> tuple[int, int]:
    """(correct, images) clean on the corruption rows' images (per-image records), else on the
    clean rows; (0, 0) without clean rows."""
    clean = df[(df.kind == "clean") & (df.model == model) & (df.exit == ex)]
    if clean.empty:
        return 0, 0
    c = clean.iloc[-1]
    if images and c.row_key in images and len(subset_rows):
        cid, cok = images[c.row_key]
        r = subset_rows.iloc[0]
        if r.row_key in images:
            idx = images[r.row_key][0]
            pos = np.searchsorted(cid, idx)
            if np.all(pos < len(cid)) and np.array_equal(cid[np.minimum(pos, len(cid) - 1)], idx):
                return int(cok[pos].sum()), len(idx)
    return int(c.n_correct), int(c.n_images)


def _error(counts: tuple[int, int]) -> float:
    """Error rate of (correct, images); NaN without images, so mCE shows it as missing."""
    k, n = counts
    return 1.0 - k / n if n else math.nan


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
        return pd.DataFrame(columns=["model", "exit", "corruption_acc", "mce", "seeds", "row_keys"])
    # "generated" sorts first
    cor = cor[origin(cor.source) == sorted(origin(cor.source).unique())[0]]
    ref_err = errors(_reference(cor, pick_baseline(cor, baseline))[1])
    rows = [
        {
            "model": m,
            "exit": e,
            "corruption_acc": g.accuracy.mean() if len(g) == 75 else math.nan,
            "mce": mce(errors(g), ref_err)[0] if ref_err else math.nan,
            "seeds": tuple(sorted(g.seed.unique())),
            "row_keys": tuple(g.row_key) if "row_key" in g else (),
        }
        for (m, e), g in cor.groupby(["model", "exit"])
    ]
    return pd.DataFrame(rows)


def section(
    df: pd.DataFrame, run_dir: Path, baseline: str | None, images: Records | None
) -> list[str]:
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


@dataclass(frozen=True, slots=True)
class _Baseline:
    """The mCE reference of one origin's sweep: its name, exit, errors and clean error."""

    name: str | None  # the baseline picked, even when it has no rows of this origin
    exit: int
    here: bool  # it has rows of this origin (it may have rows of the other origin only)
    err: dict[str, dict[int, float]]
    clean: float


def _baseline_for(
    df: pd.DataFrame, full: pd.DataFrame, name: str | None, images: Records | None
) -> _Baseline:
    """Collect what every model's mCE and relative mCE are normalised by, once per origin."""
    ex, rows = _reference(full, name)
    here = bool(len(rows))
    clean = _error(_clean_counts(df, name, ex, rows, images)) if here else math.nan
    return _Baseline(name, ex, here, errors(rows), clean)


def _relative(
    err: dict[str, dict[int, float]], clean_err: float, model: str, ref: _Baseline
) -> tuple[float, str]:
    """Relative mCE, or NaN with the reason it is not defined (shown under the table)."""
    if not ref.here:
        return math.nan, "no baseline"
    if math.isnan(clean_err) or math.isnan(ref.clean):
        return math.nan, f"no clean rows for `{model if math.isnan(clean_err) else ref.name}`"
    return relative_mce(err, clean_err, ref.err, ref.clean)


def _summary_row(
    df: pd.DataFrame, model: str, ex: int, m: pd.DataFrame, ref: _Baseline, images: Records | None
) -> dict[str, object]:
    """One (model, exit) line of the mCE table; `_acc` and `_why` feed ranking and footnote."""
    err = errors(m)
    complete = len(m) == 75
    mce_v, _ = mce(err, ref.err) if ref.here else (math.nan, {})
    k_clean, n_clean = _clean_counts(df, model, ex, m, images)
    clean_err = _error((k_clean, n_clean))
    rel, why = _relative(err, clean_err, model, ref)
    per_image = significance.per_image_mean(tuple(m.row_key), images or {})
    lo, hi = stats.mean_interval(per_image[1]) if per_image else (math.nan, math.nan)
    shown = pct(m.accuracy.mean()) + ("" if math.isnan(lo) else f" ({pct(lo)}–{pct(hi)})")
    return {
        "model": model,
        "exit": f"{ex}/{int(m.exits_total.iloc[0])}",
        "GMACs": f"{m.gmacs.iloc[0]:.4g}",
        "clean (%)": stats.pct_interval(k_clean, n_clean) if n_clean else "–",
        "mean corruption acc (%)": shown + ("" if complete else " (partial)"),
        "mCE": "–" if math.isnan(mce_v) else f"{mce_v:.1f}",
        "relative mCE": "–" if math.isnan(rel) else f"{rel:.1f}",
        "_acc": m.accuracy.mean() if complete else math.nan,
        "_keys": tuple(m.row_key),
        "_why": why,
    }


def _summary_table(
    df: pd.DataFrame, full: pd.DataFrame, ref: _Baseline, images: Records | None
) -> pd.DataFrame:
    """The mCE table of one origin, the best complete sweep's mean accuracy in bold."""
    table = pd.DataFrame(
        [
            _summary_row(df, model, ex, m, ref, images)
            for (model, ex), m in full.groupby(["model", "exit"])
        ]
    )
    # among complete sweeps: a partial one is not ranked
    bold = significance.bold_corruption(list(table._acc), list(table._keys), images or {})
    table["mean corruption acc (%)"] = [
        f"**{v}**" if i in bold else v for i, v in enumerate(table["mean corruption acc (%)"])
    ]
    return table


def _widest(rows: pd.DataFrame) -> float:
    """The largest half-width, in points, of the rows' Wilson intervals."""
    return 100 * max(
        stats.half_width(int(k), int(n)) for k, n in zip(rows.n_correct, rows.n_images)
    )


def _per_corruption_table(full: pd.DataFrame) -> pd.DataFrame:
    """Accuracy per (model, exit) and corruption, averaged over the severities."""
    return pd.DataFrame(
        [
            {
                "model": model,
                "exit": ex,
                **{c: pct(m[m.condition == c].accuracy.mean()) for c in COMMON},
            }
            for (model, ex), m in full.groupby(["model", "exit"])
        ]
    )


def _title(g: pd.DataFrame, source: str) -> str:
    """Name the origin and how many conditions each backend rendered."""
    per_source = g.drop_duplicates(["condition", "severity", "source"]).groupby("source").size()
    mix = ", ".join(f"{v} by {k}" for k, v in per_source.items())
    return (
        "pre-rendered files" if source == "rendered" else "generated on the fly"
    ) + f" ({mix} conditions)"


def _note(ref: _Baseline, baseline: str | None, whys: list[str]) -> str:
    """Say what mCE is normalised by, or why there is none, under the mCE table."""
    if ref.here:
        norm = (
            f"mCE and relative mCE are normalised by `{ref.name}` (exit {ref.exit}) of this "
            "run (= 100 for it); the AlexNet table applies only to ImageNet-1k."
        )
    elif ref.name or baseline:
        norm = f"No mCE: the baseline `{ref.name or baseline}` has no corruption rows here."
    else:
        norm = (
            "No mCE: no baseline model in this run (a ResNet, the one-glimpse baseline or "
            "`--baseline`)."
        )
    return (
        "Mean corruption accuracy = plain mean over the 15 corruptions × 5 severities. "
        + norm
        + (f" Relative mCE not defined: {whys[0]}." if whys and ref.here else "")
    )


def _tables(
    df: pd.DataFrame,
    full: pd.DataFrame,
    ref: _Baseline,
    baseline: str | None,
    images: Records | None,
    heading: str,
) -> list[str]:
    """The markdown of one origin's mCE and per-corruption tables with their notes."""
    table = _summary_table(df, full, ref, images)
    whys = sorted({w for w in table._why if w})
    n = int(full.n_images.max())
    return [
        f"### {heading}, {n} images per condition",
        "",
        md_table(table.drop(columns=["_acc", "_keys", "_why"])),
        "",
        _note(ref, baseline, whys),
        "",
        "Accuracy (%) per corruption, mean over severities; each is a mean of 5 accuracies on "
        f"{n} images, whose 95 % Wilson intervals are at most ±{_widest(full):.1f} points:",
        "",
        md_table(_per_corruption_table(full)),
        "",
    ]


def _figures(full: pd.DataFrame, run_dir: Path, stem: str, source: str) -> list[str]:
    """Draw a heatmap per model's last exit and the accuracy-vs-compute plot; link them."""
    lines: list[str] = []
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
        .agg(accuracy=("accuracy", "mean"), gmacs=("gmacs", "first"), family=("family", "first"))
        .reset_index()
    )
    fig = figures.accuracy_vs_gmacs(
        mean,
        run_dir / "figures" / f"corruption_accuracy_vs_gmacs{stem}_{source}.png",
        "Mean corruption accuracy vs compute",
    )
    return lines + [f"![corruption accuracy vs GMACs]({fig.relative_to(run_dir).as_posix()})", ""]


def _dataset_section(
    df: pd.DataFrame,
    cor: pd.DataFrame,
    run_dir: Path,
    baseline: str | None,
    images: Records | None,
    heading: str,
    stem: str,
) -> list[str]:
    """One data set's tables and figures per origin (generated or rendered); `df` is its rows."""
    lines: list[str] = []
    ref_name = pick_baseline(cor, baseline)
    for source, g in cor.groupby(origin(cor.source)):
        full = g[g.condition.isin(COMMON)]
        ref = _baseline_for(df, full, ref_name, images)
        lines += _tables(df, full, ref, baseline, images, heading + _title(g, source))
        lines += _figures(full, run_dir, stem, source)
    return lines
