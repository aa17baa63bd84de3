"""report.md: tables and figures of one run, rebuilt from its results CSV alone."""
from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

from bench.report.figures import accuracy_vs_gmacs
from bench.report.tables import clean_table, load_results


def _md_table(df: pd.DataFrame) -> str:
    head = "| " + " | ".join(df.columns) + " |"
    sep = "|" + "|".join("---" for _ in df.columns) + "|"
    body = ["| " + " | ".join(str(v) for v in row) + " |" for row in df.itertuples(index=False)]
    return "\n".join([head, sep, *body])


def _provenance(df: pd.DataFrame) -> list[str]:
    vers = json.loads(df.versions.iloc[-1]) if len(df) else {}
    lines = [
        f"- data set(s): {', '.join(sorted(df.dataset.unique()))}; images per cell: "
        f"{', '.join(str(n) for n in sorted(df.n_images.unique()))} (subset: {', '.join(sorted(df.subset.unique()))})",
        f"- seed(s): {', '.join(str(s) for s in sorted(df.seed.unique()))}; device(s): {', '.join(sorted(df.device.unique()))}",
        f"- versions: {', '.join(f'{k} {v}' for k, v in vers.items() if v)}",
        f"- harness commit(s): {', '.join(sorted(c or 'unknown' for c in df.code.unique()))}",
        f"- rows: {len(df)}; evaluation time: {df.seconds.sum():.1f} s; "
        f"rows written {df.created.min()} to {df.created.max()} (UTC)",
    ]
    return lines


def build(run_dir: Path) -> Path:
    """Write run_dir/report.md and run_dir/figures/*.png from run_dir/results.csv."""
    from bench.errors import BenchError

    csv = run_dir / "results.csv"
    if not csv.is_file():
        raise BenchError(f"no results in {run_dir} (expected {csv.name}; run `bench run --out {run_dir}` first)")
    df = load_results(csv)
    lines = [f"# Robustness bench report: `{run_dir.name}`", "",
             "Built from `results.csv` alone by `bench report`. Accuracy is top-1 on the evaluated images; "
             "cost is GMACs (multiply-accumulates, 1e9) per image up to the exit, counted by fvcore at batch 1 "
             "(GFLOPs ≈ 2 × GMACs); parameters exclude training-only heads.", ""]
    table = clean_table(df)
    lines += ["## Clean accuracy and compute", ""]
    if table.empty:
        lines += ["No clean rows in this run: nothing to show here.", ""]
    else:
        for dataset, t in table.groupby("dataset"):
            best = t.accuracy.max()
            shown = pd.DataFrame({
                "model": t.model, "exit": [f"{e}/{n}" for e, n in zip(t.exit, t.exits_total)],
                "GMACs": t.gmacs.map(lambda v: f"{v:.4g}"), "params (M)": t.params_m.map(lambda v: f"{v:.3f}"),
                "accuracy (%)": [f"**{100 * a:.2f}**" if a == best else f"{100 * a:.2f}" for a in t.accuracy],
                "images": t.n_images, "weights": t.weights})
            fig = accuracy_vs_gmacs(t, run_dir / "figures" / f"clean_accuracy_vs_gmacs_{dataset}.png",
                                    f"Clean accuracy vs compute ({dataset})")
            lines += [f"### {dataset}", "", _md_table(shown), "",
                      "Best accuracy in bold. MGNet exit t has seen t glimpses; the official baseline "
                      "(`mgbase_*`) is MGNet with one full-resolution glimpse.", "",
                      f"![clean accuracy vs GMACs]({fig.relative_to(run_dir).as_posix()})", ""]
    uncounted = sorted({op for u in df.flops_uncounted for op in json.loads(u)})
    lines += ["## How compute was counted", "",
              "Counted: convolutions, linear layers and matmuls, batch/layer norm, pooling, grid_sample, "
              "affine_grid and scaled-dot-product attention. Not counted (reported by fvcore as unsupported): "
              + (", ".join(f"`{op}`" for op in uncounted) or "none") + "; element-wise ReLU is skipped silently.",
              "", "## Provenance", "", *_provenance(df), ""]
    out = run_dir / "report.md"
    tmp = out.with_name(".report.md.tmp")
    tmp.write_text("\n".join(lines))
    tmp.replace(out)
    return out
