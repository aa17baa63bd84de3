"""The report's early-exit section and early_exit.csv: the confidence-threshold policy of each
multi-exit model, clean, under corruption and under the attacks on it (torch-free)."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from bench.core.card import file_stem
from bench.core.conditions import EXIT_POLICY, HEADLINE_EPS
from bench.report import early_exit as ee
from bench.report.figures import policy_curves, policy_grid
from bench.report.fmt import ATTACK_NAMES, md_table
from bench.report.stats import pct_interval, wilson
from bench.report.tables import clean_table
from bench.store import confidence
from bench.store.per_image import Records

CSV_COLUMNS = [
    "dataset",
    "model",
    "weights",
    "condition",
    "severity",
    "measure",
    "tau",
    "n_images",
    "n_correct",
    "accuracy",
    "accuracy_low",
    "accuracy_high",
    "mean_gmacs",
    "mean_exit",
]
HEADLINE = f"{HEADLINE_EPS * 255:g}/255"


def attacked_sets(data: ee.Cells) -> dict[str, ee.ExitData]:
    """The cells of the attacks on the policy, by label ('under slow-down PGD 4/255')."""
    return {
        f"under {ATTACK_NAMES[a]} {HEADLINE}": data[a, 0] for a in EXIT_POLICY if (a, 0) in data
    }


def _image_sets(data: ee.Cells) -> dict[str, ee.ExitData]:
    """Clean images, the corruptions pooled per severity, then the attacks on the policy."""
    pooled = {f"corruptions s{s}": d for s, d in ee.by_severity(data).items()}
    return {"clean": data["clean", 0], **pooled, **attacked_sets(data)}


def _operating_points(sets: dict[str, ee.ExitData]) -> list[dict[str, str]]:
    """Per exit k between the first and the last: τ matched on clean images to exit k's compute,
    then the policy and exit k on every image set (compute against the same images clean)."""
    clean, rows = sets["clean"], []
    for k in range(2, len(clean.gmacs)):
        tau = ee.matched_tau(clean, float(clean.gmacs[k - 1]))
        for name, d in sets.items():
            o, base = ee.outcome(d, tau), ee.outcome(clean.on(d.indices), tau).gmacs
            alone = (
                d.correct[k - 1] if d.clean is None else d.correct[k - 1] & d.clean.correct[k - 1]
            )
            rows.append(
                {
                    "matched to": f"exit {k} ({clean.gmacs[k - 1]:.4g} GMACs)",
                    "τ": f"{tau:g}",
                    "images": name,
                    "policy accuracy (%)": pct_interval(o.n_correct, o.n_images),
                    "mean GMACs": f"{o.gmacs:.4g}",
                    "× clean compute": f"{o.gmacs / base:.2f}",
                    "mean exit": f"{o.exit:.2f}",
                    "that exit alone (%)": pct_interval(int(alone.sum()), o.n_images),
                }
            )
    return rows


def _csv_rows(dataset: str, model: str, weights: str, data: ee.Cells) -> list[dict[str, object]]:
    """The policy at every τ and measure on every cell, and on the corruptions per severity."""
    named = {**data, **{("all corruptions", s): d for s, d in ee.by_severity(data).items()}}
    out = []
    for (cond, sev), d in sorted(named.items()):
        for measure in confidence.MEASURES:
            for t in ee.TAUS:
                o = ee.outcome(d, t, measure)
                lo, hi = wilson(o.n_correct, o.n_images)
                out.append(
                    dict(
                        dataset=dataset,
                        model=model,
                        weights=weights,
                        condition=cond,
                        severity=sev,
                        measure=measure,
                        tau=t,
                        n_images=o.n_images,
                        n_correct=o.n_correct,
                        accuracy=o.n_correct / o.n_images,
                        accuracy_low=lo,
                        accuracy_high=hi,
                        mean_gmacs=o.gmacs,
                        mean_exit=o.exit,
                    )
                )
    return out


def _grid(data: ee.Cells, model: str, run_dir: Path) -> list[str]:
    """The per-corruption figure: every corruption's curve at each severity (none without any)."""
    panels: dict[str, dict[int, pd.DataFrame]] = {}
    for (cond, sev), d in sorted(data.items()):
        if sev >= 1:
            panels.setdefault(cond, {})[sev] = ee.curve(d)
    if not panels:
        return []
    fig = policy_grid(
        panels,
        ee.curve(data["clean", 0]),
        run_dir / "figures" / f"early_exit_corruptions_{file_stem(model)}.png",
        f"{model}: early exits per corruption and severity",
    )
    return [f"![early exits of {model} per corruption]({fig.relative_to(run_dir).as_posix()})", ""]


def _model_lines(df: pd.DataFrame, model: str, data: ee.Cells, run_dir: Path) -> list[str]:
    """A model's figures and operating-point table."""
    sets = _image_sets(data)
    curves = {name: ee.curve(d) for name, d in sets.items()}
    fig = policy_curves(
        curves,
        clean_table(df),
        run_dir / "figures" / f"early_exit_{file_stem(model)}.png",
        f"{model}: stop at the first exit with confidence ≥ τ",
    )
    return [
        f"### {model}",
        "",
        md_table(pd.DataFrame(_operating_points(sets))),
        "",
        f"![early exits of {model}]({fig.relative_to(run_dir).as_posix()})",
        "",
        *_grid(data, model, run_dir),
    ]


INTRO = (
    "A multi-exit model stops at the first exit whose confidence (its largest softmax probability) "
    "is at least τ, else at its last, and spends that exit's GMACs. τ is matched on clean images "
    "to the compute of each middle exit; the same τ then runs on the corrupted images, pooled per "
    "severity over the corruptions, and on the attacked ones. × clean compute: the mean GMACs "
    "against the same images' clean. Under attack (strict L∞, see docs/protocol.md#early-exits): "
    "exit-union PGD maximises every exit's cross-entropy, so whichever exit is taken errs; "
    "slow-down PGD lowers the confidence of every exit but the last, to push images to costlier "
    "exits; an image counts as right only if the policy is right on it clean and the exit taken "
    "on the attacked image is right. Accuracies in % with their 95 % Wilson interval. Every τ, "
    "both confidence measures and every cell: `early_exit.csv`."
)


def section(df: pd.DataFrame, run_dir: Path, images: Records) -> list[str]:
    """Markdown lines of the early-exit section (none without stored confidences), and
    early_exit.csv beside the report."""
    conf = confidence.read(run_dir / "confidence.csv")
    lines: list[str] = []
    rows: list[dict[str, object]] = []
    for dataset, d in df.groupby("dataset"):
        for model in ee.multi_exit_models(d):
            data = ee.cells(d, model, images, conf)
            if ("clean", 0) not in data:
                continue
            weights = str(d[d.model == model].weights.iloc[-1])
            rows += _csv_rows(str(dataset), model, weights, data)
            lines += _model_lines(d, model, data, run_dir)
    if not rows:
        return []
    _write_csv(run_dir / "early_exit.csv", pd.DataFrame(rows, columns=CSV_COLUMNS))
    return ["## Early exits", "", INTRO, "", *lines]


def _write_csv(path: Path, table: pd.DataFrame) -> None:
    """Replace early_exit.csv atomically."""
    tmp = path.with_name(f".{path.name}.tmp")
    table.to_csv(tmp, index=False, float_format="%.6g")
    tmp.replace(path)
