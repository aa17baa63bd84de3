"""Where MGNet looks on the default data set, against where the object is: glimpse sides beside
object sides, how much of the object each glimpse covers, and how far glimpses 3 and 4 move from
glimpse 2 (docs/figures/glimpse_geometry.png, the numbers for docs/training.md).

Usage: python benchmarks/glimpse_geometry.py [--model mgnet_small] [--n 1000] [--out PNG]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.data import cache_dir, cluttered, fmnist, load_split, to_unit  # noqa: E402
from bench.load.specs import check_test_split, expand, load  # noqa: E402

CANVAS = cluttered.ClutterSpec().canvas  # the default data set's image side, in pixels


def _area(b: np.ndarray) -> np.ndarray:
    """Areas of (x0, y0, x1, y1) boxes, zero where a box is empty."""
    return np.clip(b[..., 2] - b[..., 0], 0, None) * np.clip(b[..., 3] - b[..., 1], 0, None)


def _overlap(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Areas of the intersections of two arrays of boxes."""
    lo, hi = np.maximum(a[..., :2], b[..., :2]), np.minimum(a[..., 2:], b[..., 2:])
    return _area(np.concatenate([lo, hi], axis=-1))


def measure(model_spec: str, n: int) -> dict[str, np.ndarray]:
    """Per image: the object's box, each exit's glimpse box and correctness."""
    lm = load(expand(model_spec)[0], "cluttered_fmnist", cache_dir())
    test = load_split("cluttered_fmnist", "test")
    check_test_split([lm], test, "cluttered_fmnist")
    idx = np.arange(min(n, len(test)))
    with torch.no_grad():
        ex = lm.model.exits(to_unit(test.images[idx], torch.device("cpu")))
    items, _ = fmnist.load("test", fmnist.find_dir())
    spec = cluttered.ClutterSpec()
    objects = np.array([cluttered.object_box(items, int(i), 1, spec) for i in idx])
    correct = (ex.logits.argmax(-1).numpy() == test.labels[idx][None]).astype(float)
    cfg = lm.model.cfg
    scales = np.array([cfg.scale_min, cfg.scale_max])
    return {"objects": objects, "glimpses": ex.boxes.numpy(), "correct": correct, "scales": scales}


def summary(m: dict[str, np.ndarray], canvas: int = CANVAS) -> list[str]:
    """A markdown table: per exit, glimpse side, object coverage and the move from glimpse 2."""
    obj, g, ok = m["objects"], m["glimpses"], m["correct"]
    side = np.maximum(obj[:, 2] - obj[:, 0], obj[:, 3] - obj[:, 1]) * canvas
    centre = (g[..., :2] + g[..., 2:]) / 2
    lo, hi = m["scales"] * canvas
    lines = [
        f"Glimpse sides allowed by the model: {lo:.1f}–{hi:.1f} px. "
        f"Objects (tight box, longest side): median {np.median(side):.0f} px, "
        f"{np.percentile(side, 10):.0f}–{np.percentile(side, 90):.0f} px (10th–90th "
        f"percentile) of a {canvas}-px canvas; {len(side)} test images.",
        "",
        "| exit | glimpse side (px, median) | object covered (median) | whole object inside "
        "| centre moved from glimpse 2 (px, median) | accuracy |",
        "|---|---|---|---|---|---|",
    ]
    for e in range(g.shape[0]):
        cover = _overlap(g[e], obj) / np.maximum(_area(obj), 1e-9)
        moved = np.linalg.norm(centre[e] - centre[1], axis=-1) * canvas if e > 1 else None
        lines.append(
            f"| {e + 1} | {np.median(g[e, :, 2] - g[e, :, 0]) * canvas:.1f} "
            f"| {np.median(cover):.2f} | {np.mean(cover > 0.99):.0%} "
            f"| {'–' if moved is None else f'{np.median(moved):.1f}'} | {ok[e].mean():.1%} |"
        )
    return lines


def draw(m: dict[str, np.ndarray], out: Path, canvas: int = CANVAS) -> None:
    """Glimpse side against object side, and the object's share each glimpse covers."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    obj, g = m["objects"], m["glimpses"]
    side = np.maximum(obj[:, 2] - obj[:, 0], obj[:, 3] - obj[:, 1]) * canvas
    fig, (a, b, c) = plt.subplots(1, 3, figsize=(12, 3.8), dpi=120)
    bins = np.arange(0, canvas + 2, 2)
    lo, hi = m["scales"] * canvas
    a.axvspan(lo, hi, color="tab:orange", alpha=0.12, label="MGNet's glimpse scale range")
    a.hist(side, bins=bins, alpha=0.5, color="k", label="object (longest side)")
    for e in range(1, g.shape[0]):
        a.hist(
            (g[e, :, 2] - g[e, :, 0]) * canvas, bins=bins, histtype="step", label=f"glimpse {e + 1}"
        )
    a.set(xlabel="side (px)", ylabel="images", title="glimpse and object sides")
    a.legend(fontsize=7)
    cover = [_overlap(g[e], obj) / np.maximum(_area(obj), 1e-9) for e in range(g.shape[0])]
    b.boxplot(cover, tick_labels=[f"{e + 1}" for e in range(g.shape[0])])
    b.set(xlabel="exit (glimpse)", ylabel="fraction of the object inside", title="object coverage")
    centre = (g[..., :2] + g[..., 2:]) / 2
    for e in range(2, g.shape[0]):
        moved = np.linalg.norm(centre[e] - centre[1], axis=-1) * canvas
        c.hist(moved, bins=np.arange(0, 33), histtype="step", label=f"glimpse {e + 1}")
    c.set(xlabel="centre distance from glimpse 2 (px)", ylabel="images", title="later glimpses")
    c.legend(fontsize=7)
    for ax in (a, b, c):
        ax.grid(alpha=0.3)
    fig.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out)
    plt.close(fig)


def main() -> None:
    """Measure, print the markdown table and write the figure."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", default="mgnet_small")
    p.add_argument("--n", type=int, default=1000)
    p.add_argument("--out", type=Path, default=Path("docs/figures/glimpse_geometry.png"))
    a = p.parse_args()
    torch.set_num_threads(2)
    m = measure(a.model, a.n)
    print("\n".join(summary(m)))
    draw(m, a.out)
    print(a.out)


if __name__ == "__main__":
    main()
