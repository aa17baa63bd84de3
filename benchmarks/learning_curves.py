"""The learning-curve figure of docs/training.md, drawn from checkpoint sidecars (no torch).

Each folder holds the sidecars (<model>.json) of one training budget: `bench train` writes them
beside its checkpoints, and the shipped weights carry theirs. Left: test accuracy after each epoch
(solid: the shipped budget). Right: the final test accuracy of each budget, which is what shows
convergence under a one-cycle schedule, whose rate reaches zero at every budget's end.

Usage: python benchmarks/learning_curves.py DIR [DIR ...] --out docs/figures/learning_curves.png
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.core.recipe import RECIPES  # noqa: E402

SHIPPED = RECIPES["cluttered_fmnist"].epochs  # the budget the shipped weights were trained for
MODELS = {"mgnet_small": "tab:red", "mgbase_small": "tab:blue", "resnet_small": "tab:green"}


def budgets(folders: list[Path]) -> dict[str, list[dict]]:
    """model -> its sidecars, by increasing epoch budget."""
    out: dict[str, list[dict]] = {m: [] for m in MODELS}
    for folder in folders:
        for m in MODELS:
            side = folder / f"{m}.json"
            if side.is_file():
                out[m].append(json.loads(side.read_text()))
    return {m: sorted(s, key=lambda d: d["recipe"]["epochs"]) for m, s in out.items()}


def draw(runs: dict[str, list[dict]], out: Path) -> None:
    """Left: test accuracy per epoch per budget; right: final accuracy against the budget."""
    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 4), dpi=120)
    for m, colour in MODELS.items():
        for meta in runs[m]:
            curve = meta.get("curve")
            if curve:
                epochs = range(1, len(curve) + 1)
                budget = meta["recipe"]["epochs"]
                left.plot(
                    epochs,
                    [100 * a[-1] for a in curve],
                    color=colour,
                    ls="-" if budget == SHIPPED else ":",
                    lw=1.5 if budget == SHIPPED else 1,
                    label=f"{m} ({budget} epochs)",
                )
        xs = [meta["recipe"]["epochs"] for meta in runs[m]]
        right.plot(xs, [100 * meta["accuracy"] for meta in runs[m]], "o-", color=colour, label=m)
        for x, meta in zip(xs, runs[m]):
            right.annotate(f"{100 * meta['accuracy']:.1f}", (x, 100 * meta["accuracy"]), fontsize=7)
    left.set(xlabel="epoch", ylabel="test accuracy, last exit (%)", title="after each epoch")
    right.set(
        xlabel="epochs in the one-cycle schedule",
        ylabel="final test accuracy, last exit (%)",
        title="final accuracy by training budget",
    )
    right.set_xscale("log", base=2)
    budgets_drawn = sorted({meta["recipe"]["epochs"] for r in runs.values() for meta in r})
    right.set_xticks(budgets_drawn, [str(b) for b in budgets_drawn])
    right.minorticks_off()
    right.axvline(SHIPPED, color="grey", ls="--", lw=0.8, label=f"shipped ({SHIPPED} epochs)")
    for ax in (left, right):
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    fig.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out)
    plt.close(fig)


def main() -> None:
    """Draw the figure from the sidecar folders given on the command line."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("folders", nargs="+", type=Path, help="folders of sidecars, one per budget")
    p.add_argument("--out", type=Path, default=Path("docs/figures/learning_curves.png"))
    a = p.parse_args()
    draw(budgets(a.folders), a.out)
    print(a.out)


if __name__ == "__main__":
    main()
