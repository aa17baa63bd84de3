"""The report's early-exit section and early_exit.csv: the confidence-threshold policy of each
multi-exit model, clean and under corruption (torch-free)."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from bench.core.card import file_stem
from bench.core.errors import BenchError
from bench.report import early_exit as ee
from bench.report.figures import policy_curves
from bench.report.fmt import md_table
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


ATTACKED = {"exit_union_pgd": "exit-union PGD 4/255", "slowdown_pgd": "slow-down PGD 4/255"}


def _image_sets(data: dict[tuple[str, int], ee.ExitData]) -> dict[str, ee.ExitData]:
    """Clean images, the corruptions pooled per severity, then the attacks on the policy."""
    pooled = {f"corruptions s{s}": d for s, d in ee.by_severity(data).items()}
    attacked = {f"under {label}": data[a, 0] for a, label in ATTACKED.items() if (a, 0) in data}
    return {"clean": data["clean", 0], **pooled, **attacked}


def _operating_points(sets: dict[str, ee.ExitData]) -> list[dict[str, str]]:
    """Per exit k between the first and the last: τ matched on clean images to exit k's compute,
    then the policy and exit k on every image set."""
    clean, rows = sets["clean"], []
    for k in range(2, len(clean.gmacs)):
        tau = ee.matched_tau(clean, float(clean.gmacs[k - 1]))
        base = ee.outcome(clean, tau).gmacs
        for name, d in sets.items():
            o = ee.outcome(d, tau)
            rows.append(
                {
                    "matched to": f"exit {k} ({clean.gmacs[k - 1]:.4g} GMACs)",
                    "τ": f"{tau:g}",
                    "images": name,
                    "policy accuracy (%)": pct_interval(o.n_correct, o.n_images),
                    "mean GMACs": f"{o.gmacs:.4g}",
                    "× clean compute": f"{o.gmacs / base:.2f}",
                    "mean exit": f"{o.exit:.2f}",
                    "that exit alone (%)": pct_interval(int(d.correct[k - 1].sum()), o.n_images),
                }
            )
    return rows


def _csv_rows(dataset: str, model: str, weights: str, data: dict) -> list[dict[str, object]]:  # type: ignore[type-arg]
    """The policy at every τ and measure on every cell, and on the corruptions per severity."""
    named = {(c, s): d for (c, s), d in data.items()}
    named |= {("all corruptions", s): d for s, d in ee.by_severity(data).items()}
    out = []
    for (cond, sev), d in sorted(named.items()):
        for measure in confidence.MEASURES:
            for t in ee.TAUS:
                o = ee.outcome(d, t, measure)
                lo, hi = wilson(o.n_correct, o.n_images)
                out.append(
                    dict(
                        zip(
                            CSV_COLUMNS,
                            (
                                dataset,
                                model,
                                weights,
                                cond,
                                sev,
                                measure,
                                t,
                                o.n_images,
                                o.n_correct,
                                o.n_correct / o.n_images,
                                lo,
                                hi,
                                o.gmacs,
                                o.exit,
                            ),
                        )
                    )
                )
    return out


def _model_lines(df: pd.DataFrame, model: str, sets: dict, run_dir: Path) -> list[str]:  # type: ignore[type-arg]
    """A model's figure and operating-point table."""
    curves = {name: ee.curve(d) for name, d in sets.items()}
    static = clean_table(df)
    fig = policy_curves(
        curves,
        static,
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
    ]


def section(df: pd.DataFrame, run_dir: Path, images: Records) -> list[str]:
    """Markdown lines of the early-exit section (none without stored confidences), and
    early_exit.csv beside the report."""
    conf = confidence.read(run_dir / "confidence.csv")
    lines, rows = [], []
    for dataset, d in df.groupby("dataset"):
        for model in ee.multi_exit_models(d):
            data = ee.cells(d, model, images, conf)
            if ("clean", 0) not in data:
                continue
            weights = str(d[d.model == model].weights.iloc[-1])
            rows += _csv_rows(str(dataset), model, weights, data)
            lines += _model_lines(d, model, _image_sets(data), run_dir)
    if not rows:
        return []
    _write_csv(run_dir / "early_exit.csv", pd.DataFrame(rows, columns=CSV_COLUMNS))
    return [
        "## Early exits",
        "",
        "A multi-exit model stops at the first exit whose confidence (its largest softmax "
        "probability) is at least τ, else at its last, and spends that exit's GMACs. τ is matched "
        "on clean images to the compute of each middle exit; the same τ then runs on the "
        "corrupted images, pooled per severity over the corruptions. × clean compute: the mean "
        "GMACs against the clean images' at that τ. Under attack (L∞ 4/255, 10 steps, strict): "
        "exit-union PGD maximises every exit's cross-entropy, so whichever exit is taken errs; "
        "slow-down PGD lowers the confidence of every exit but the last, to push images to "
        "costlier exits (docs/protocol.md). An image wrong on clean counts as wrong under attack. "
        "Accuracies in % with their 95 % Wilson interval. Every τ, both confidence measures and "
        "every cell: `early_exit.csv`.",
        "",
        *lines,
    ]


def _write_csv(path: Path, table: pd.DataFrame) -> None:
    """Replace early_exit.csv atomically."""
    tmp = path.with_name(f".{path.name}.tmp")
    table.to_csv(tmp, index=False, float_format="%.6g")
    tmp.replace(path)


def policy_table(
    run_dir: Path, taus: list[float], models: list[str] | None, measure: str = "msp"
) -> str:
    """`bench exits`: the policy at the given τ for the run's multi-exit models (or `models`), on
    clean images and on all corruptions pooled, as markdown; writes nothing."""
    from bench.report.markdown import checked_per_image, load_run

    for t in taus:
        ee.check_tau(t)
    _, df = load_run(run_dir, None)
    conf = confidence.read(run_dir / "confidence.csv")
    wanted = models or ee.multi_exit_models(df)
    ee.check_policy_input(df, wanted, conf, str(run_dir))
    images, rows = checked_per_image(df, run_dir), []
    for model in wanted:
        data = ee.cells(df, model, images, conf)
        if ("clean", 0) not in data:
            raise BenchError(f"{run_dir}: no clean cell of {model} with stored confidences")
        corrupted = [d for (_, sev), d in sorted(data.items()) if sev >= 1]
        sets = {"clean": data["clean", 0]}
        if corrupted:
            sets["all corruptions"] = sum(corrupted[1:], corrupted[0])
        sets |= {k: v for k, v in _image_sets(data).items() if k.startswith("under ")}
        for t in taus:
            for name, d in sets.items():
                o = ee.outcome(d, t, measure)
                rows.append(
                    {
                        "model": model,
                        "τ": f"{t:g}",
                        "images": f"{name} ({o.n_images})",
                        "accuracy (%)": pct_interval(o.n_correct, o.n_images),
                        "mean GMACs": f"{o.gmacs:.4g}",
                        "mean exit": f"{o.exit:.2f}",
                    }
                )
    return md_table(pd.DataFrame(rows))
