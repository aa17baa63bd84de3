"""`bench exits`: the early-exit policy at given thresholds, from a run folder's stored records
(torch-free; writes nothing)."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from bench.core.errors import BenchError
from bench.report import early_exit as ee
from bench.report.early_exit_section import attacked_sets
from bench.report.fmt import md_table
from bench.report.markdown import checked_per_image, load_run
from bench.report.stats import pct_interval
from bench.store import confidence


def _sets(data: ee.Cells) -> dict[str, ee.ExitData]:
    """Clean images, every corruption pooled, and the attacked images, by label."""
    pooled = ee.all_corruptions(data)
    every = {} if pooled is None else {"all corruptions, all severities": pooled}
    return {"clean": data["clean", 0], **every, **attacked_sets(data)}


def policy_table(
    run_dir: Path, taus: list[float], models: list[str] | None, measure: str = "msp"
) -> str:
    """The policy at each τ for the run's multi-exit models (or `models`), per data set, as
    markdown; one error line for what it cannot evaluate."""
    for t in taus:
        ee.check_tau(t)
    _, df = load_run(run_dir, None)
    conf = confidence.read(run_dir / "confidence.csv")
    wanted = models or ee.multi_exit_models(df)
    ee.check_policy_input(df, wanted, conf, str(run_dir))
    images, rows = checked_per_image(df, run_dir), []
    for dataset, model in df[df.model.isin(wanted)][["dataset", "model"]].drop_duplicates().values:
        data = ee.cells(df[df.dataset == dataset], str(model), images, conf)
        if ("clean", 0) not in data:
            raise BenchError(f"{run_dir}: no clean cell of {model} with stored confidences")
        for t in taus:
            for name, s in _sets(data).items():
                o = ee.outcome(s, t, measure)
                rows.append(
                    {
                        "data set": dataset,
                        "model": model,
                        "τ": f"{t:g}",
                        "images": f"{name} ({o.n_images})",
                        "accuracy (%)": pct_interval(o.n_correct, o.n_images),
                        "mean GMACs": f"{o.gmacs:.4g}",
                        "mean exit": f"{o.exit:.2f}",
                    }
                )
    return md_table(pd.DataFrame(rows))
