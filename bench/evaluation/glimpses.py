"""Where a glimpse model looks: each exit's box on a few test images, clean, corrupted and attacked.

The boxes go to glimpses.csv and the inputs to examples/glimpses/*.png; the report draws them from
those files alone. PGD here is the strict PGD-10 at 4/255 on the last exit.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from PIL import Image

from bench.attacks import LogitsGuard, PassCounter, attack_mode
from bench.attacks.pgd import PGD
from bench.core.card import file_stem
from bench.core.conditions import HEADLINE_EPS, Condition
from bench.core.seeds import image_seeds
from bench.data import ImageSet, first_images, iter_batches, to_unit
from bench.models.base import true_gradient
from bench.store import glimpses

if TYPE_CHECKING:
    from bench.evaluation.setup import Setup

N_EXAMPLES = 4


def _save_strip(x: torch.Tensor, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    arr = x.detach().clamp(0, 1).mul(255).round().byte().permute(0, 2, 3, 1).cpu().numpy()
    Image.fromarray(np.concatenate(list(arr), axis=1)).save(path)


def _pgd(
    model: torch.nn.Module, x: torch.Tensor, labels: np.ndarray, idx: np.ndarray, seed: int
) -> torch.Tensor:
    """The examples under strict PGD-10 at 4/255 on the last exit."""
    y = torch.from_numpy(labels).to(x.device)
    view = model.at_exit(model.n_exits)
    seeds = torch.from_numpy(image_seeds(seed, idx, "glimpses", model.n_exits))
    with true_gradient(model), attack_mode(model):
        pgd = PGD(HEADLINE_EPS, HEADLINE_EPS / 4, 10)
        return pgd(PassCounter(LogitsGuard(view)), x, y, seeds=seeds)


def _rows(
    lm: Any,
    dataset: str,
    condition: str,
    xi: torch.Tensor,
    idx: np.ndarray,
    labels: np.ndarray,
    out: Path,
) -> list[glimpses.Glimpse]:
    """Each exit's box and prediction on one condition's inputs, whose strip is saved beside."""
    stem = "-".join(file_stem(s) for s in (lm.card.name, lm.weights, condition))
    rel = f"examples/glimpses/{stem}.png"
    _save_strip(xi, out / rel)
    with torch.inference_mode():
        ex = lm.model.exits(xi)
    preds, boxes = ex.logits.argmax(-1).cpu().numpy(), ex.boxes.cpu().numpy()
    return [
        glimpses.Glimpse(
            lm.card.name,
            lm.weights,
            dataset,
            condition,
            int(i),
            int(lab),
            t + 1,
            int(preds[t, n]),
            *map(float, boxes[t, n]),
            rel,
        )
        for n, (i, lab) in enumerate(zip(idx, labels))
        for t in range(boxes.shape[0])
    ]


def record(
    lm: Any,
    images: ImageSet,
    dataset: str,
    seed: int,
    out: Path,
    device: torch.device,
    corrupted: tuple[Condition, ImageSet, Any] | None,
    attack: bool,
) -> int:
    """Store a glimpse model's boxes (no-op for other models or if stored); returns rows written."""
    path = out / "glimpses.csv"
    stored = glimpses.read(path)
    if any((g.model, g.weights, g.dataset) == (lm.card.name, lm.weights, dataset) for g in stored):
        return 0
    model = lm.model.to(device).eval()
    idx, imgs, labels = first_images(images, N_EXAMPLES)
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
        inputs["pgd-linf-4/255"] = _pgd(model, x, labels, idx, seed)
    rows = [
        r for name, xi in inputs.items() for r in _rows(lm, dataset, name, xi, idx, labels, out)
    ]
    model.cpu()
    glimpses.append(path, rows)
    return len(rows)


def record_glimpses(setup: Setup, lm: Any, out: Path) -> None:
    """Glimpse boxes on example images under the run's kinds of condition (glimpse models only)."""
    cells = setup.cells
    corr = next((c.condition for c in cells if c.condition.kind == "corruption"), None)
    example = None
    if corr is not None:
        corr = dataclasses.replace(corr, severity=3)
        cset, positions, _, _ = setup.corrupted.images(corr, N_EXAMPLES)
        example = (corr, cset, positions)
    record(
        lm,
        setup.images,
        setup.cfg.dataset,
        setup.cfg.seed,
        out,
        setup.device,
        example,
        attack=any(c.condition.kind == "attack" for c in cells),
    )
