"""Figures drawn from result tables only (matplotlib, no torch)."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402

from bench.report.stats import wilson  # noqa: E402
from bench.report.tables import pareto_front  # noqa: E402


def save(fig: plt.Figure, path: Path, tight: bool = True) -> Path:
    """Write a figure (PNG) and close it."""
    if tight:
        fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    plt.close(fig)
    return path


def _interval_bars(ax: plt.Axes, xs: pd.Series, g: pd.DataFrame, colour: str, alpha: float) -> None:
    """95 % Wilson intervals as error bars, where the rows carry their counts."""
    if "n_correct" not in g or "n_images" not in g:
        return
    lo, hi = zip(*(wilson(int(k), int(n)) for k, n in zip(g.n_correct, g.n_images)))
    acc = g.n_correct / g.n_images
    below, above = acc - pd.Series(lo, index=g.index), pd.Series(hi, index=g.index) - acc
    err = [100 * below.clip(lower=0), 100 * above.clip(lower=0)]  # rounding can dip below 0
    ax.errorbar(xs, 100 * acc, yerr=err, fmt="none", ecolor=colour, alpha=alpha, capsize=2, lw=0.8)


FAMILY_STYLE = {
    "mgnet": ("tab:red", "o"),
    "mgbase": ("tab:blue", "s"),
    "resnet": ("tab:green", "^"),
}


def accuracy_vs_gmacs(table: pd.DataFrame, path: Path, title: str) -> Path:
    """Accuracy against GMACs: multi-exit models as anytime curves, the Pareto front dashed."""
    fig, ax = plt.subplots(figsize=(6.4, 4.4), dpi=120)
    for i, (model, g) in enumerate(table.groupby("model", sort=True)):
        colour, marker = FAMILY_STYLE.get(g.family.iloc[0], (f"C{(i + 3) % 10}", "D"))
        g = g.sort_values("exit")
        ax.plot(
            g.gmacs,
            100 * g.accuracy,
            marker=marker,
            color=colour,
            label=model,
            linestyle="-" if len(g) > 1 else "none",
            markersize=7,
        )
        _interval_bars(ax, g.gmacs, g, colour, 0.6)
        if len(g) > 1:
            for _, r in g.iterrows():
                ax.annotate(
                    f"{int(r.exit)}",
                    (r.gmacs, 100 * r.accuracy),
                    textcoords="offset points",
                    xytext=(4, -10),
                    fontsize=8,
                    color=colour,
                )
    front = pareto_front(table)
    ax.plot(
        front.gmacs,
        100 * front.accuracy,
        color="grey",
        linestyle="--",
        linewidth=1,
        label="Pareto front",
        zorder=0,
    )
    ax.set_xscale("log")
    ax.set_xlabel("GMACs per image (log scale; numbers = MGNet exits)")
    ax.set_ylabel("top-1 accuracy (%), bars: 95 % interval")
    ax.set_title(title)
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8, loc="best")
    return save(fig, path)


def accuracy_vs_eps(df: pd.DataFrame, path: Path, title: str, l2: bool) -> Path:
    """Robust accuracy against ε, one line per model and exit (MGNet's exits in fading shades)."""
    fig, ax = plt.subplots(figsize=(6.4, 4.4), dpi=120)
    for i, (model, g) in enumerate(df.groupby("model", sort=True)):
        colour, marker = FAMILY_STYLE.get(g.family.iloc[0], (f"C{(i + 3) % 10}", "D"))
        n_exits = int(g.exits_total.iloc[0])
        for ex, s in g.groupby("exit"):
            s = s.sort_values("epsilon")
            xs = s.epsilon if l2 else s.epsilon * 255
            label = model if n_exits == 1 else f"{model} exit {ex}"
            ax.plot(
                xs,
                100 * s.accuracy,
                marker=marker,
                color=colour,
                label=label,
                markersize=5,
                alpha=0.35 + 0.65 * ex / n_exits,
            )
            _interval_bars(ax, xs, s, colour, 0.35 + 0.65 * ex / n_exits)
    ax.set_xlabel("ε (L2, [0,1] pixel units)" if l2 else "ε (L∞, k/255)")
    ax.set_ylabel("robust accuracy (%), bars: 95 % interval")
    ax.set_title(title)
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=7, loc="best")
    return save(fig, path)


def corruption_heatmap(rows: pd.DataFrame, path: Path, title: str) -> Path:
    """Accuracy per corruption (rows) and severity (columns) of one model at one exit."""
    table = rows.pivot_table(
        index="condition", columns="severity", values="accuracy", aggfunc="mean"
    )
    order = [c for c in rows.condition.drop_duplicates()]
    table = table.reindex(order) * 100
    fig, ax = plt.subplots(figsize=(5.2, 0.32 * len(table) + 1.2), dpi=120)
    im = ax.imshow(table.values, cmap="viridis", vmin=0, vmax=100, aspect="auto")
    ax.set_xticks(range(table.shape[1]), [str(c) for c in table.columns])
    ax.set_yticks(range(table.shape[0]), table.index, fontsize=8)
    ax.set_xlabel("severity")
    for i in range(table.shape[0]):
        for j in range(table.shape[1]):
            v = table.values[i, j]
            ax.text(
                j,
                i,
                f"{v:.0f}",
                ha="center",
                va="center",
                fontsize=7,
                color="white" if v < 60 else "black",
            )
    fig.colorbar(im, ax=ax, label="accuracy (%)")
    ax.set_title(title, fontsize=9)
    return save(fig, path)


def policy_curves(
    curves: dict[str, pd.DataFrame], static: pd.DataFrame, path: Path, title: str
) -> Path:
    """Accuracy against average GMACs of an early-exit policy over τ (one line per image set),
    beside every model's fixed exits on clean images (markers)."""
    fig, ax = plt.subplots(figsize=(6.4, 4.4), dpi=120)
    shades = plt.cm.Greys([0.35 + 0.13 * i for i in range(len(curves))])
    attacked = iter(["tab:orange", "tab:purple", "tab:brown"])
    for i, (label, c) in enumerate(curves.items()):
        under = label.startswith("under ")
        colour = "tab:red" if label == "clean" else next(attacked) if under else shades[i]
        ax.plot(
            c.gmacs,
            100 * c.accuracy,
            color=colour,
            label=f"policy, {label}",
            lw=1.4,
            linestyle="--" if under else "-",
        )
    for model, g in static.groupby("model", sort=True):
        colour, marker = FAMILY_STYLE.get(g.family.iloc[0], ("tab:purple", "D"))
        ax.plot(
            g.gmacs,
            100 * g.accuracy,
            marker=marker,
            color=colour,
            linestyle="none",
            label=f"{model}, fixed exits (clean)",
        )
        _interval_bars(ax, g.gmacs, g, colour, 0.6)
    ax.set_xlabel("average GMACs per image")
    ax.set_ylabel("top-1 accuracy (%)")
    ax.set_title(title)
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=7, loc="best")
    return save(fig, path)


def policy_grid(
    panels: dict[str, dict[int, pd.DataFrame]], clean: pd.DataFrame, path: Path, title: str
) -> Path:
    """One panel per corruption: the early-exit policy's accuracy against average GMACs over τ at
    each severity (darker: more severe), the clean curve in red."""
    cols = 5
    rows = -(-len(panels) // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(3.0 * cols, 2.4 * rows), dpi=100, squeeze=False)
    shades = plt.cm.Greys([0.35 + 0.13 * i for i in range(5)])
    for ax, (name, by_sev) in zip(axes.flat, panels.items()):
        ax.plot(clean.gmacs, 100 * clean.accuracy, color="tab:red", lw=1.2)
        for sev, c in sorted(by_sev.items()):
            ax.plot(c.gmacs, 100 * c.accuracy, color=shades[sev - 1], lw=1.0)
        ax.set_title(name, fontsize=9)
        ax.tick_params(labelsize=7)
        ax.grid(True, alpha=0.3)
    for ax in list(axes.flat)[len(panels) :]:
        ax.axis("off")
    fig.suptitle(f"{title} (x: average GMACs, y: accuracy %)", fontsize=10)
    return save(fig, path)
