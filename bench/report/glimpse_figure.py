"""Figures of where glimpse models look, drawn from glimpses.csv and the stored example inputs."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pandas as pd

from bench.core.card import file_stem
from bench.core.errors import BenchError
from bench.report.figures import plt, save
from bench.store.glimpses import read

EXIT_COLOURS = (
    "tab:blue",
    "tab:orange",
    "tab:green",
    "tab:red",
    "tab:purple",
    "tab:brown",
    "tab:pink",
    "tab:olive",
)


def _check_complete(
    run_dir: Path, model: str, cond: str, c: pd.DataFrame, images: list[int], n_exits: int
) -> None:
    """Raise unless every example has a box per exit and its stored inputs exist (damaged files)."""
    have = set(zip(c.image, c.exit))
    missing = [(i, t) for i in images for t in range(1, n_exits + 1) if (i, t) not in have]
    strip = run_dir / c.inputs.iloc[0]
    if missing or not strip.is_file():
        what = (
            f"no box for image {missing[0][0]} at exit {missing[0][1]}"
            if missing
            else f"{strip} is missing"
        )
        raise BenchError(
            f"{run_dir / 'glimpses.csv'}: {model} under {cond}: {what} (damaged run files? rerun "
            "into a new --out)"
        )


def _strip(path: Path) -> np.ndarray:
    """The stored example inputs of one condition, side by side, as an RGB array."""
    from PIL import Image

    return np.asarray(Image.open(path).convert("RGB"))


def _boxes(ax: plt.Axes, b: pd.DataFrame, side: int) -> None:
    """Outline each exit's glimpse on one image, in that exit's colour."""
    for r in b.itertuples():
        colour = EXIT_COLOURS[(r.exit - 1) % len(EXIT_COLOURS)]
        ax.add_patch(
            plt.Rectangle(
                (r.x0 * side - 0.5, r.y0 * side - 0.5),
                (r.x1 - r.x0) * side,
                (r.y1 - r.y0) * side,
                fill=False,
                color=colour,
                linewidth=1.6,
            )
        )


def _panel(ax: plt.Axes, tile: np.ndarray, b: pd.DataFrame, cond: str, n_exits: int) -> None:
    """One image under one condition: its glimpses, label and the last exit's prediction."""
    ax.imshow(tile)
    _boxes(ax, b, tile.shape[0])
    last = b.iloc[-1]
    ok = "✓" if last.predicted == last.label else "✗"
    ax.set_title(f"{cond}\nlabel {last.label}, exit {n_exits}: {last.predicted} {ok}", fontsize=7)
    ax.axis("off")


def _legend(fig: plt.Figure, n_exits: int) -> None:
    """Name the box colours once per figure, below the panels."""
    handles = [
        plt.Line2D([], [], color=EXIT_COLOURS[t % len(EXIT_COLOURS)], label=f"glimpse {t + 1}")
        for t in range(n_exits)
    ]
    fig.legend(handles=handles, loc="lower center", ncol=n_exits, fontsize=8, frameon=False)
    fig.subplots_adjust(bottom=0.08)


def _figure(run_dir: Path, model: str, dataset: str, m: pd.DataFrame) -> Path:
    """Draw and save one model's figure on one data set from its glimpse rows `m`."""
    conds = list(dict.fromkeys(m.condition))
    images = list(dict.fromkeys(m.image))
    n_exits = int(m.exit.max())
    fig, axes = plt.subplots(
        len(conds),
        len(images),
        figsize=(2.1 * len(images), 2.3 * len(conds)),
        dpi=110,
        squeeze=False,
    )
    for i, cond in enumerate(conds):
        c = m[m.condition == cond]
        _check_complete(run_dir, model, cond, c, images, n_exits)
        strip = _strip(run_dir / c.inputs.iloc[0])
        side = strip.shape[0]
        for j, image in enumerate(images):
            b = c[c.image == image].sort_values("exit")
            _panel(axes[i, j], strip[:, j * side : (j + 1) * side], b, cond, n_exits)
    _legend(fig, n_exits)
    return save(
        fig, run_dir / "figures" / f"glimpses_{file_stem(model)}_{dataset}.png", tight=False
    )


def draw(run_dir: Path, shown: set[tuple[str, str, str]]) -> list[tuple[str, Path]]:
    """One figure per model with glimpses: rows = conditions, columns = example images, a box per
    exit.

    `shown` holds the (model, data set, weights) the report's tables show; boxes of other weights
    are left out.
    """
    rows = [r for r in read(run_dir / "glimpses.csv") if (r.model, r.dataset, r.weights) in shown]
    if not rows:
        return []
    g = pd.DataFrame([dataclasses.asdict(r) for r in rows])
    return [
        (str(model), _figure(run_dir, str(model), dataset, m))
        for (model, dataset), m in g.groupby(["model", "dataset"], sort=True)
    ]
