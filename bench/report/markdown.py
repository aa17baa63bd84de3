"""report.md and report.html: tables and figures of one run, rebuilt from its stored results alone.

Inputs: results.csv, plus per_image.csv, checks.csv, confidence.csv and glimpses.csv (with
examples/) when the run wrote them. Besides the report it writes early_exit.csv.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import pandas as pd

from bench.core.card import file_stem
from bench.core.conditions import ADAPTIVE, HEADLINE_EPS
from bench.report import (
    best_known,
    corruption_section,
    early_exit_section,
    glimpse_figure,
    headline,
    html,
    significance,
)
from bench.report.figures import accuracy_vs_eps, accuracy_vs_gmacs
from bench.report.fmt import ATTACK_NAMES, md_table, pgd_name
from bench.report.sanity import attack_findings
from bench.report.stats import pct_interval
from bench.report.tables import clean_table, current, latest, load_results
from bench.store.per_image import Records
from bench.store.results import SCORING

INTERVALS = (
    "Accuracies in % with their 95 % Wilson interval; bold: the best and any accuracy not "
    "significantly different from it (McNemar's exact test on the same images), none where all tie."
)

CHECKS_DOC = Path(__file__).resolve().parents[2] / "docs" / "checks.md"
PAPER_COLUMN = "paper PGD (official protocol)"  # its numbers are not a ranking: never in bold
BEST_COLUMN = "best-known"


def check_explanations(names: list[str]) -> dict[str, str]:
    """Each check's entry of docs/checks.md (its text under its heading), so a report carries
    them wherever its folder is moved; {} where the docs are not at hand."""
    if not CHECKS_DOC.is_file():
        return {}
    sections = CHECKS_DOC.read_text().split("\n## ")[1:]
    entries = {
        s.partition("\n")[0].strip(): " ".join(s.partition("\n")[2].split()) for s in sections
    }
    return {n: entries[n] for n in names if n in entries}


def _provenance(df: pd.DataFrame) -> list[str]:
    vers = json.loads(df.versions.iloc[-1]) if len(df) else {}
    return [
        f"- data set(s): {', '.join(sorted(df.dataset.unique()))}; image subsets: "
        f"{', '.join(sorted(df.subset.unique()))}",
        f"- seed(s): {', '.join(str(s) for s in sorted(df.seed.unique()))}; device(s): "
        f"{', '.join(sorted(df.device.unique()))}",
        f"- versions: torch {df.torch.iloc[-1]}; "
        f"{', '.join(f'{k} {v}' for k, v in vers.items() if v and k != 'torch')}",
        "- protocol(s): "
        f"{', '.join(sorted(p for p in df.protocol.unique() if p)) or 'none (no attacks)'}; images "
        "per cell: "
        + "; ".join(
            f"{k} {int(g.n_images.min())}–{int(g.n_images.max())}"
            if g.n_images.min() != g.n_images.max()
            else f"{k} {int(g.n_images.max())}"
            for k, g in df.groupby("kind")
        ),
        f"- harness commit(s): {', '.join(sorted(c or 'unknown' for c in df.code.unique()))}",
        f"- rows: {len(df)}; evaluation time: {df.seconds.sum():.1f} s; forward/backward image "
        f"passes: {int(df.n_forward.sum()):,} / {int(df.n_backward.sum()):,}; rows written "
        f"by runs started {df.created.min()} to {df.created.max()} (UTC)",
    ]


def _superseded(stored: pd.DataFrame, shown: pd.DataFrame) -> list[str]:
    """A provenance line for rows of models' earlier weights, which the report leaves out."""
    old = stored.drop(shown.index)
    if old.empty:
        return []
    models = ", ".join(f"`{m}`" for m in sorted(old.model.unique()))
    return [
        f"- not shown: {len(old)} rows of earlier weights of {models} (the report shows each "
        "model's newest)"
    ]


def _older_scoring(df: pd.DataFrame) -> list[str]:
    """A provenance line for cells whose newest row an older harness scored (no rerun since)."""
    shown = latest(df)
    old = shown[shown.scoring < SCORING]
    if old.empty:
        return []
    return [
        f"- scored by an older harness: {len(old)} of the {len(shown)} rows shown (scoring "
        f"{', '.join(map(str, sorted(old.scoring.unique())))}; this harness scores {SCORING}); run "
        "`bench run` on this folder again to rescore them"
    ]


def _clean_section(df: pd.DataFrame, run_dir: Path, images: Records) -> list[str]:
    """Clean accuracy per model and exit with its interval, beside compute and the figure."""
    table = clean_table(df)
    lines = ["## Clean accuracy and compute", ""]
    if table.empty:
        return lines + ["No clean rows in this run: nothing to show here.", ""]
    for dataset, t in table.groupby("dataset"):
        bold = significance.bold_counts(
            list(t.n_correct), list(t.n_images), list(t.row_key), images
        )
        shown = pd.DataFrame(
            {
                "model": t.model,
                "exit": [f"{e}/{n}" for e, n in zip(t.exit, t.exits_total)],
                "GMACs": t.gmacs.map(lambda v: f"{v:.4g}"),
                "params (M)": t.params_m.map(lambda v: f"{v:.3f}"),
                "accuracy (%)": [
                    _bold(pct_interval(k, n), i in bold)
                    for i, (k, n) in enumerate(zip(t.n_correct, t.n_images))
                ],
                "images": t.n_images,
                "weights": t.weights,
            }
        )
        fig = accuracy_vs_gmacs(
            t,
            run_dir / "figures" / f"clean_accuracy_vs_gmacs_{dataset}.png",
            f"Clean accuracy vs compute ({dataset})",
        )
        lines += [
            f"### {dataset}",
            "",
            md_table(shown),
            "",
            f"{INTERVALS} MGNet exit t has seen t glimpses; the official baseline "
            "(`mgbase_*`) is MGNet with one full-resolution glimpse.",
            "",
            f"![clean accuracy vs GMACs]({fig.relative_to(run_dir).as_posix()})",
            "",
        ]
    return lines


def _attack_section(
    df: pd.DataFrame, run_dir: Path, images: Records, best: pd.DataFrame | None = None
) -> list[str]:
    """Robust accuracy: the headline at 4/255, the ε curves, the paper protocol and checks."""
    att = latest(df[df.kind == "attack"])
    if att.empty:
        return [
            "## Adversarial robustness",
            "",
            "No attack rows in this run (use `--suite attacks` or `default`).",
            "",
        ]
    lines = [
        "## Adversarial robustness",
        "",
        "Strict protocol unless marked: ε in [0,1] pixel units, random start, projection and "
        "clamp to [0,1], every exit attacked through its own truncated model with the true "
        "gradient (MGNet's rescaler and position stop-gradient off); an image an exit "
        "misclassifies clean is not robust there.",
        "",
    ]
    several = att.dataset.nunique() > 1
    if best is None:
        best, images = best_known.joined(df, images)
    for dataset, a in att.groupby("dataset"):
        lines += _attack_tables(
            a,
            latest(df[(df.kind == "clean") & (df.dataset == dataset)]),
            run_dir,
            f" ({dataset})" if several else "",
            f"_{file_stem(dataset)}" if several else "",
            images,
            best[best.dataset == dataset],
        )
    return lines


COUNTED = ["accuracy", "n_correct", "n_images", "row_key"]


def _headline_columns(
    at: pd.DataFrame, clean: pd.DataFrame, pgd: str, best: pd.DataFrame
) -> dict[str, pd.DataFrame]:
    """Accuracy and counts per (model, exit) of each attack at the headline radius, by column;
    the adaptive attacks and the best-known figure where they ran."""

    def pick(name: str, **kw: object) -> pd.DataFrame:
        s = at[at.condition == name]
        for k, v in kw.items():
            s = s[s[k] == v]
        return s.set_index(["model", "exit"])[COUNTED]

    return {
        "clean": clean,
        "FGSM": pick("fgsm"),
        f"{pgd} L∞": pick("pgd", norm="linf"),
        "AutoAttack": pick("autoattack"),
        "transfer PGD": pick("transfer_pgd"),
        PAPER_COLUMN: pick("paper_pgd"),
        **{ATTACK_NAMES[a]: pick(a) for a in ADAPTIVE if (at.condition == a).any()},
        BEST_COLUMN: best.set_index(["model", "exit"])[[*COUNTED, "attacks"]],
    }


def _headline_rows(
    att: pd.DataFrame, cols: dict[str, pd.DataFrame], images: Records
) -> list[dict[str, str]]:
    """One table row per attacked (model, exit); the significant best per column in bold."""
    models = att[["model", "exit", "exits_total", "gmacs", "family"]].drop_duplicates(
        ["model", "exit"]
    )
    models = models.sort_values(["family", "model", "exit"])
    keys = list(zip(models.model, models.exit))
    rows = [
        {"model": m, "exit": f"{e}/{n}", "GMACs": f"{g:.4g}"}
        for m, e, n, g in zip(models.model, models.exit, models.exits_total, models.gmacs)
    ]
    for c, s in cols.items():
        got = s.reindex(keys)
        counts, bold, star = list(got.n_correct), set(), [False] * len(keys)
        if c == BEST_COLUMN:
            ranked = best_known.comparable(list(got.attacks))
            star = [not ok for ok in ranked]
            counts = [v if ok else math.nan for v, ok in zip(counts, ranked)]
        if c != PAPER_COLUMN:
            bold = significance.bold_counts(counts, list(got.n_images), list(got.row_key), images)
        for i, (k, n) in enumerate(zip(got.n_correct, got.n_images)):
            text = pct_interval(int(k), int(n)) + ("*" if star[i] else "") if pd.notna(k) else ""
            rows[i][c + " (%)"] = _bold(text, i in bold) if text else "–"
    return rows


def _interval(row: pd.Series) -> str:
    """A row's accuracy with its Wilson interval, in percent."""
    return pct_interval(int(row.n_correct), int(row.n_images))


def _bold(text: str, bold: bool) -> str:
    """Markdown bold where the significance test marked the entry."""
    return f"**{text}**" if bold else text


def _best_lines(best: pd.DataFrame) -> list[str]:
    """Per model and exit: which attacks the best-known figure combines, and the strongest."""

    def strongest(r: Any) -> str:
        if not r.strongest:
            return "none broke an image"
        tied = r.strongest.split(", ")
        return "all broke as many" if len(tied) == len(r.attacks) > 1 else r.strongest

    lines = [
        f"- `{r.model}` exit {r.exit}: {len(r.attacks)} attacks on {r.n_images} images "
        f"({', '.join(r.attacks)}); the strongest: {strongest(r)}"
        for r in best.sort_values(["model", "exit"]).itertuples()
    ]
    if not lines:
        return []
    return [
        "Best-known: an image counts as robust only if it survived every strict attack run on it "
        "here, on the images all of them ran on (computed from per_image.csv); * marks one without "
        "AutoAttack where others include it: an upper bound from weaker attacks, never in bold. "
        "It combines:",
        "",
        *lines,
        "",
    ]


def _headline_table(
    att: pd.DataFrame,
    at: pd.DataFrame,
    clean_rows: pd.DataFrame,
    heading: str,
    images: Records,
    best: pd.DataFrame,
) -> list[str]:
    """The robust-accuracy table at 4/255 with its image counts and notes."""
    best = best_known.at_headline(best)
    clean = clean_rows.set_index(["model", "exit"])[COUNTED]
    rows = _headline_rows(att, _headline_columns(at, clean, _pgd(att), best), images)
    shown = pd.DataFrame(rows)
    shown = shown[[c for c in shown.columns if (shown[c] != "–").any()]]
    counts = [f"{name} {int(n)}" for name, n in at.groupby("condition").n_images.max().items()]
    if len(clean_rows):
        counts.append(f"clean {int(clean_rows.n_images.max())}")
    return [
        f"### Robust accuracy at ε = 4/255 (L∞){heading}",
        "",
        md_table(shown) if len(at) else "No L∞ attack ran at 4/255 (see the figures below).",
        "",
        f"Images per column: {', '.join(counts) or 'none'}. {INTERVALS} The paper protocol is not "
        "marked; – = not run (the `default` suite runs AutoAttack and the adaptive attacks at "
        "each model's last exit only, and the adaptive attacks skip a model without a glimpse "
        "sampler). Transfer: PGD examples crafted on the run's ResNet baseline. BPDA, EOT, "
        "misdirection and smooth transfer attack through the glimpse sampler "
        "(the bench repository's docs/attacks.md).",
        "",
        *_best_lines(best),
    ]


def _pgd(att: pd.DataFrame) -> str:
    """The name the L∞ PGD rows go by in titles ("PGD-10", or "PGD" for mixed step counts)."""
    return pgd_name(att[att.norm == "linf"])


def _headline_figure(att: pd.DataFrame, at: pd.DataFrame, run_dir: Path, stem: str) -> list[str]:
    """Robust accuracy under L∞ PGD at 4/255 against compute, when PGD ran there."""
    pgd_head = at[(at.condition == "pgd") & (at.norm == "linf")]
    if pgd_head.empty:
        return []
    fig = accuracy_vs_gmacs(
        pgd_head,
        run_dir / "figures" / f"pgd_accuracy_vs_gmacs{stem}.png",
        f"{_pgd(att)} L∞ 4/255 robust accuracy vs compute",
    )
    return [f"![robust accuracy vs GMACs]({fig.relative_to(run_dir).as_posix()})", ""]


def _eps_figures(att: pd.DataFrame, run_dir: Path, stem: str) -> list[str]:
    """Robust accuracy against ε for each strict sweep over more than one radius."""
    lines: list[str] = []
    for name, norm in (("fgsm", "linf"), ("pgd", "linf"), ("pgd", "l2")):
        s = att[(att.condition == name) & (att.norm == norm) & (att.protocol == "strict")]
        title = "FGSM" if name == "fgsm" else f"{pgd_name(s)} {'L∞' if norm == 'linf' else 'L2'}"
        if s.epsilon.nunique() > 1:
            fig = accuracy_vs_eps(
                s,
                run_dir / "figures" / f"accuracy_vs_eps_{name}_{norm}{stem}.png",
                f"{title}: robust accuracy vs ε",
                l2=norm == "l2",
            )
            lines += [f"![{title} accuracy vs eps]({fig.relative_to(run_dir).as_posix()})", ""]
    return lines


def _attack_tables(
    att: pd.DataFrame,
    clean_rows: pd.DataFrame,
    run_dir: Path,
    heading: str,
    stem: str,
    images: Records,
    best: pd.DataFrame,
) -> list[str]:
    """One data set's robust-accuracy table, figures and paper-vs-strict comparison."""
    at = att[(att.epsilon - HEADLINE_EPS).abs() < 1e-9]
    return (
        _headline_table(att, at, clean_rows, heading, images, best)
        + _headline_figure(att, at, run_dir, stem)
        + _eps_figures(att, run_dir, stem)
        + _paper_section(att)
    )


def _points(difference: float) -> str:
    """An accuracy difference in signed percentage points."""
    return f"{100 * difference:+.1f}"


def _paper_section(att: pd.DataFrame) -> list[str]:
    paper = att[att.protocol == "paper"].set_index(["model", "exit"])
    strict_rows = att[
        (att.condition == "pgd")
        & (att.norm == "linf")
        & ((att.epsilon - HEADLINE_EPS).abs() < 1e-9)
    ]
    strict = strict_rows.set_index(["model", "exit"])
    both = paper.index.intersection(strict.index)
    if not len(both):
        return []
    rows = [
        {
            "model": m,
            "exit": e,
            "paper PGD (%)": _interval(paper.loc[(m, e)]),
            f"strict {pgd_name(strict_rows)} 4/255 (%)": _interval(strict.loc[(m, e)]),
            "difference (points)": _points(
                paper.loc[(m, e), "accuracy"] - strict.loc[(m, e), "accuracy"]
            ),
        }
        for m, e in sorted(both)
    ]
    return [
        "### Paper protocol vs strict protocol",
        "",
        "The official MGNet evaluation attacks normalized tensors (nominal 4/255 ≈ 0.9/255 in "
        "pixels), with no random start and no clamp, 10 steps of 1/255 (normalized), the loss on "
        "the last exit only while every exit is scored, the gradient rescaler and stop-gradient "
        "active, and accuracy on the attacked images alone. The difference is how much reported "
        "robustness does not survive the strict protocol. Accuracies with their 95 % Wilson "
        "interval.",
        "",
        md_table(pd.DataFrame(rows)),
        "",
    ]


def _glimpse_section(df: pd.DataFrame, run_dir: Path) -> list[str]:
    figs = glimpse_figure.draw(run_dir, set(zip(df.model, df.dataset, df.weights)))
    if not figs:
        return []
    lines = [
        "## Where MGNet looks",
        "",
        "Glimpse boxes of every exit on the same test images, clean, under a corruption (severity "
        "3) and under strict PGD-10 L∞ 4/255 on the last exit (the attacked input is the one "
        "shown); titles give the label and the last exit's prediction. Glimpse 1 of MGNet is the "
        "whole image at low resolution.",
        "",
    ]
    for model, fig in figs:
        lines += [
            f"### {model}",
            "",
            f"![glimpses of {model}]({fig.relative_to(run_dir).as_posix()})",
            "",
        ]
    return lines


# raised per cell: one line per model
COLLAPSED = ("attack_not_converged", "attack_zero_gradient", "weaker_attack_breaks_more")


def _warn_rows(warn: list) -> list[dict[str, object]]:  # type: ignore[type-arg]
    """Table rows of raised checks; per-cell attack indicators collapse to one row per model and
    check, naming the cell with the largest count."""
    rows: list[dict[str, object]] = []
    groups: dict[tuple[str, str], list] = {}  # type: ignore[type-arg]
    for f in warn:
        if f.check in COLLAPSED:
            groups.setdefault((f.model, f.check), []).append(f)
        else:
            rows.append({"model": f.model, "exit": f.exit, "check": f.check, "detail": f.detail})
    for (model, check), fs in groups.items():
        top = max(fs, key=lambda c: c.value)
        exits = ", ".join(map(str, sorted({c.exit for c in fs})))
        detail = (
            top.detail
            if len(fs) == 1
            else (f"raised in {len(fs)} cells; the largest count, at exit {top.exit}: {top.detail}")
        )
        rows.append({"model": model, "exit": exits, "check": check, "detail": detail})
    return rows


def _sanity_section(df: pd.DataFrame, run_dir: Path, images: Records) -> list[str]:
    from bench.store.checks import read_checks

    findings = attack_findings(df, images)
    # one line per finding: a cell killed after its flags were written but before its rows writes
    # them again
    checks = list(
        {
            (c.model, c.weights, c.dataset, c.exit, c.check, c.status, c.detail): c
            for c in read_checks(run_dir / "checks.csv")
        }.values()
    )
    if not findings and not checks:
        return []
    warn = [f for f in findings if f.status == "warn"] + [c for c in checks if c.status == "warn"]
    lines = [
        "## Sanity checks",
        "",
        f"{len(findings) + len(checks) - len(warn)} passed, {len(warn)} raised; "
        + (
            "each raised check is explained below ("
            if check_explanations(["deterministic"])
            else "("
        )
        + "the bench repository's docs/checks.md explains them all).",
        "",
    ]
    if warn:
        lines += [md_table(pd.DataFrame(_warn_rows(warn))), ""]
        explained = check_explanations(list(dict.fromkeys(f.check for f in warn)))
        lines += [line for name, text in explained.items() for line in (f"- **{name}**: {text}",)]
        lines += [""] if explained else []
    info = [c for c in checks if c.check == "rescaler_effect"]
    for c in info:
        lines += [f"- {c.model}: {c.detail}."]
    return lines + ([""] if info else [])


def load_run(run_dir: Path, baseline: str | None) -> tuple[pd.DataFrame, pd.DataFrame]:
    """All stored rows and the current ones, refusing a missing, empty or unknown input."""
    from bench.core.errors import BenchError, unknown

    csv = run_dir / "results.csv"
    if not csv.is_file():
        raise BenchError(
            f"no results in {run_dir} (expected {csv.name}; run `bench run --out {run_dir}` first)"
        )
    stored = load_results(csv)
    if stored.empty:
        raise BenchError(f"{csv} holds no rows (run `bench run --out {run_dir}` first)")
    df = current(stored)
    if baseline and baseline not in set(df.model):  # checked here: only corruption rows look it up
        raise unknown("baseline model", baseline, df.model.unique())
    return stored, df


def _intro(run_dir: Path) -> list[str]:
    """The report's title and what its accuracy and cost columns mean."""
    return [
        f"# Robustness bench report: `{run_dir.name}`",
        "",
        "Built from `results.csv` alone by `bench report`. Accuracy is top-1 on the evaluated "
        "images; cost is GMACs (multiply-accumulates, 1e9) per image up to the exit, counted by "
        "fvcore at batch 1 (GFLOPs ≈ 2 × GMACs); parameters exclude training-only heads.",
        "",
    ]


def checked_per_image(df: pd.DataFrame, run_dir: Path) -> Records:
    """per_image.csv, refused where a record disagrees with its row in results.csv.

    An edited record would silently change the tables computed on shared images.
    """
    from bench.core.errors import BenchError
    from bench.store import per_image

    images = per_image.read(run_dir / "per_image.csv")
    for r in df.itertuples():
        ok = images[r.row_key][1] if r.row_key in images else None
        if ok is not None and (len(ok), int(ok.sum())) != (r.n_images, r.n_correct):
            raise BenchError(
                f"{run_dir / 'per_image.csv'}: the record of {r.model} {r.condition} (exit "
                f"{r.exit}) disagrees with results.csv ({int(ok.sum())} of {len(ok)} correct "
                f"against {r.n_correct} of {r.n_images})"
            )
    return images


def _compute_section(df: pd.DataFrame) -> list[str]:
    """Which operations the GMACs count and which fvcore left out in this run."""
    uncounted = sorted({op for u in df.flops_uncounted for op in json.loads(u)})
    return [
        "## How compute was counted",
        "",
        "Counted: convolutions, linear layers and matmuls, batch/layer norm, adaptive average "
        "pooling, grid_sample, affine_grid and scaled-dot-product attention. "
        "Not counted (reported by fvcore as unsupported): "
        + (", ".join(f"`{op}`" for op in uncounted) or "none")
        + "; element-wise ReLU is skipped silently.",
        "",
    ]


def _write(run_dir: Path, lines: list[str]) -> Path:
    """Replace report.md atomically, then write report.html from the same text."""
    out = run_dir / "report.md"
    tmp = out.with_name(".report.md.tmp")
    tmp.write_text("\n".join(lines))
    tmp.replace(out)
    html.write("\n".join(lines), run_dir, f"Robustness bench report: {run_dir.name}")
    return out


def build(run_dir: Path, baseline: str | None = None) -> Path:
    """Write run_dir/report.md and run_dir/figures/*.png from run_dir/results.csv.

    `baseline` names the model mCE is normalised by (default: the run's ResNet baseline).
    """
    stored, df = load_run(run_dir, baseline)
    images = checked_per_image(df, run_dir)
    lines = _intro(run_dir)
    best, images = best_known.joined(df, images)
    lines += headline.section(df, baseline, images, best)
    lines += _clean_section(df, run_dir, images)
    lines += corruption_section.section(df, run_dir, baseline, images)
    lines += early_exit_section.section(df, run_dir, images)
    lines += _attack_section(df, run_dir, images, best)
    lines += _glimpse_section(df, run_dir)
    lines += _sanity_section(df, run_dir, images)
    lines += _compute_section(df)
    lines += [
        "## Provenance",
        "",
        *_provenance(df),
        *_superseded(stored, df),
        *_older_scoring(df),
        "",
    ]
    return _write(run_dir, lines)
