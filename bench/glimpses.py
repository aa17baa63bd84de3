"""Where a glimpse model looks: each exit's box on a few test images, clean, corrupted and attacked, kept as data.

The run writes the boxes to glimpses.csv and the inputs to examples/glimpses/*.png; the report draws
them (plotting reads only stored data). PGD here is the strict PGD-10 at 4/255 on the last exit.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from bench.card import file_stem
from bench.csvfile import append_records, parse_records, read_records

if TYPE_CHECKING:  # the report reads glimpses.csv through this module without torch
    import torch

    from bench.conditions import Condition
    from bench.data import ImageSet

N_EXAMPLES = 4
COLUMNS = ("model", "weights", "dataset", "condition", "image", "label", "exit", "predicted",
           "x0", "y0", "x1", "y1", "inputs")


@dataclass(frozen=True, slots=True)
class Glimpse:
    """One exit's box (fractions of width and height) on one example image under one condition."""

    model: str
    weights: str
    dataset: str
    condition: str  # clean | <corruption>-<severity> | pgd-linf-4/255
    image: int  # data set index
    label: int
    exit: int
    predicted: int  # the exit's prediction on this input
    x0: float
    y0: float
    x1: float
    y1: float
    inputs: str  # PNG strip of this condition's inputs, relative to the run folder


def read(path: Path) -> list[Glimpse]:
    """Stored glimpse rows ([] when the run has none)."""
    ints = {"image", "label", "exit", "predicted"}
    floats = {"x0", "y0", "x1", "y1"}
    return parse_records(path, read_records(path, COLUMNS, "glimpses"), lambda rec: Glimpse(
        **{c: int(v) if c in ints else float(v) if c in floats else v for c, v in zip(COLUMNS, rec)}),
        "damaged glimpse record")


def _save_strip(x: "torch.Tensor", path: Path) -> None:
    import numpy as np
    from PIL import Image

    path.parent.mkdir(parents=True, exist_ok=True)
    arr = (x.detach().clamp(0, 1).mul(255).round().byte().permute(0, 2, 3, 1).cpu().numpy())
    Image.fromarray(np.concatenate(list(arr), axis=1)).save(path)


def record(lm: Any, images: "ImageSet", dataset: str, seed: int, out: Path, device: "torch.device",
           corrupted: "tuple[Condition, ImageSet, Any] | None", attack: bool) -> int:
    """Store the boxes of a model with glimpses (no-op for others or when stored); returns rows written."""
    import torch

    from attacks import LogitsGuard, PassCounter, attack_mode
    from attacks.pgd import PGD
    from bench.conditions import HEADLINE_EPS
    from bench.data import iter_batches, subset_indices, to_unit
    from bench.seeds import image_seeds
    from models.base import true_gradient

    path = out / "glimpses.csv"
    if any(g.model == lm.card.name and g.weights == lm.weights and g.dataset == dataset for g in read(path)):
        return 0
    model = lm.model.to(device).eval()
    idx, _ = subset_indices(len(images), N_EXAMPLES)
    _, imgs, labels = next(iter_batches(images, idx, N_EXAMPLES, 0))
    x = to_unit(imgs, device)
    with torch.inference_mode():
        if model.exits(x[:1]).boxes is None:
            model.cpu()
            return 0
    inputs = {"clean": x}
    if corrupted is not None:
        cond, cset, positions = corrupted
        _, cimgs, _ = next(iter_batches(cset, positions, N_EXAMPLES, 0))
        inputs[f"{cond.name}-{cond.severity}"] = to_unit(cimgs, device)
    if attack:
        y = torch.from_numpy(labels).to(device)
        view = model.at_exit(model.n_exits)
        seeds = torch.from_numpy(image_seeds(seed, idx, "glimpses", model.n_exits))
        with true_gradient(model), attack_mode(model):
            inputs["pgd-linf-4/255"] = PGD(HEADLINE_EPS, HEADLINE_EPS / 4, 10)(PassCounter(LogitsGuard(view)), x, y,
                                                                                seeds=seeds)
    rows = []
    for name, xi in inputs.items():
        rel = f"examples/glimpses/{file_stem(lm.card.name)}-{file_stem(lm.weights)}-{file_stem(name)}.png"
        _save_strip(xi, out / rel)
        with torch.inference_mode():
            ex = model.exits(xi)
        preds = ex.logits.argmax(-1).cpu().numpy()
        boxes = ex.boxes.cpu().numpy()
        rows += [Glimpse(lm.card.name, lm.weights, dataset, name, int(i), int(lab), t + 1, int(preds[t, n]),
                         *map(float, boxes[t, n]), rel)
                 for n, (i, lab) in enumerate(zip(idx, labels)) for t in range(boxes.shape[0])]
    model.cpu()
    append_records(path, COLUMNS, [[getattr(r, c) for c in COLUMNS] for r in rows])
    return len(rows)
