"""Model sanity checks run before a model's first attack.

They cover determinism, zero input gradients and the effect of training-only gradient shapers.
Each has an entry in docs/checks.md; the rows go to checks.csv.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import torch
import torch.nn.functional as F

from bench.attacks.base import attack_mode
from bench.data import first_images, to_unit
from bench.models.base import gradient_shapers, true_gradient
from bench.store.checks import CheckRow, append_checks, read_checks
from bench.store.provenance import utc_now

if TYPE_CHECKING:
    from bench.evaluation.setup import Setup

ZERO_GRAD_WARN = 0.05  # more than 5 % of input entries with exactly zero gradient


def zero_gradient_fraction(
    model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor, t: int
) -> float:
    """Fraction of input entries whose true gradient of CE at exit t is exactly zero.

    Such pixels never move under sign-gradient attacks (sign(0) = 0): MGNet's point-sampled
    glimpses leave pixels between sample points without gradient.
    """
    view = model.at_exit(t)
    with true_gradient(model), attack_mode(model):
        xg = x.clone().requires_grad_(True)
        (g,) = torch.autograd.grad(F.cross_entropy(view(xg), y, reduction="sum"), xg)
    return float((g == 0).float().mean())


def rescaler_cosine(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor) -> float:
    """Mean cosine between input gradients as the official attack takes them (rescaler on, position
    detached in the tokens) and the true gradient (1 = no effect)."""

    def grad() -> torch.Tensor:
        xg = x.clone().requires_grad_(True)
        (g,) = torch.autograd.grad(F.cross_entropy(model(xg), y, reduction="sum"), xg)
        return g.flatten(1)

    with attack_mode(model):
        g_on = grad()
        with true_gradient(model):
            g_off = grad()
    return float(F.cosine_similarity(g_on, g_off, dim=1, eps=1e-20).mean())


def model_checks(
    model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor
) -> list[tuple[int, str, str, float, str]]:
    """(exit, check, status, value, detail) for one model on a batch of clean images."""
    out = []
    model.eval()
    with torch.no_grad():
        a, b = model.exits(x).logits, model.exits(x).logits
    same = bool(torch.equal(a, b))
    out.append(
        (
            0,
            "deterministic",
            "ok" if same else "warn",
            float(same),
            "two eval passes give identical logits"
            if same
            else "eval forward is not deterministic",
        )
    )
    for t in range(1, model.n_exits + 1):
        z = zero_gradient_fraction(model, x, y, t)
        out.append(
            (
                t,
                "zero_gradient_fraction",
                "warn" if z > ZERO_GRAD_WARN else "ok",
                z,
                f"{100 * z:.1f} % of input entries have exactly zero gradient at exit {t}",
            )
        )
    # a training-only shaper the paper protocol keeps
    if any(m.active for m in gradient_shapers(model)):
        c = rescaler_cosine(model, x, y)
        out.append(
            (
                model.n_exits,
                "rescaler_effect",
                "ok",
                c,
                f"cosine {c:.3f} between input gradients with MGNet's gradient shapers (rescaler, "
                "position stop-gradient) on and off: attacks that keep them (paper protocol) "
                "follow " + ("a different direction" if c < 0.9999 else "the same direction"),
            )
        )
    return out


def check_models(setup: Setup, path: Path) -> None:
    """Check every model not yet checked on this data set (rank 0, before a run's first attack)."""
    checked = {
        (c.model, c.weights, c.dataset) for c in read_checks(path) if c.check == "deterministic"
    }
    todo = [
        lm for lm in setup.loaded if (lm.card.name, lm.weights, setup.cfg.dataset) not in checked
    ]
    if not todo:
        return
    _, imgs, labels = first_images(setup.images, 32)
    dev = setup.device
    for lm in todo:
        lm.model.to(dev)
        created = utc_now()
        found = model_checks(lm.model, to_unit(imgs, dev), torch.from_numpy(labels).to(dev))
        append_checks(
            path,
            [
                CheckRow(
                    model=lm.card.name,
                    weights=lm.weights,
                    dataset=setup.cfg.dataset,
                    exit=t,
                    check=name,
                    status=status,
                    value=value,
                    detail=detail,
                    created=created,
                )
                for t, name, status, value, detail in found
            ],
        )
        lm.model.cpu()


def randomized(setup: Setup, path: Path) -> set[tuple[str, str]]:
    """(model, weights) that evaluate non-deterministically: AutoAttack uses its `rand` version."""
    return {
        (c.model, c.weights)
        for c in read_checks(path)
        if c.check == "deterministic" and c.status == "warn" and c.dataset == setup.cfg.dataset
    }
