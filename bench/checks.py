"""Model sanity checks that need torch (zero gradients, determinism, the rescaler), kept in checks.csv.

Each check name has an entry in docs/checks.md: when it is raised, what it means, what to do.
"""
from __future__ import annotations

from dataclasses import astuple, dataclass, fields
from pathlib import Path
from typing import TYPE_CHECKING, Iterable

from bench.csvfile import append_records, parse_records, read_records

if TYPE_CHECKING:
    import torch

ZERO_GRAD_WARN = 0.05  # more than 5 % of input entries with exactly zero gradient


@dataclass(frozen=True, slots=True, kw_only=True)
class CheckRow:
    """One check of one model (and exit, 0 = the whole model)."""

    model: str
    weights: str
    dataset: str
    exit: int
    check: str
    status: str  # ok | warn
    value: float
    detail: str
    created: str


CHECK_COLUMNS = tuple(f.name for f in fields(CheckRow))


def zero_gradient_fraction(model: "torch.nn.Module", x: "torch.Tensor", y: "torch.Tensor", t: int) -> float:
    """Fraction of input entries whose true gradient of CE at exit t is exactly zero.

    Such pixels never move under sign-gradient attacks (sign(0) = 0): MGNet's point-sampled
    glimpses leave pixels between sample points without gradient.
    """
    import torch
    import torch.nn.functional as F

    from attacks.base import attack_mode
    from models.base import true_gradient

    view = model.at_exit(t)
    with true_gradient(model), attack_mode(model):
        xg = x.clone().requires_grad_(True)
        (g,) = torch.autograd.grad(F.cross_entropy(view(xg), y, reduction="sum"), xg)
    return float((g == 0).float().mean())


def rescaler_cosine(model: "torch.nn.Module", x: "torch.Tensor", y: "torch.Tensor") -> float:
    """Mean cosine between input gradients as the official attack takes them (rescaler on, position detached in
    the tokens) and the true gradient (1 = no effect)."""
    import torch
    import torch.nn.functional as F

    from attacks.base import attack_mode
    from models.base import true_gradient

    def grad() -> "torch.Tensor":
        xg = x.clone().requires_grad_(True)
        (g,) = torch.autograd.grad(F.cross_entropy(model(xg), y, reduction="sum"), xg)
        return g.flatten(1)

    with attack_mode(model):
        g_on = grad()
        with true_gradient(model):
            g_off = grad()
    return float(F.cosine_similarity(g_on, g_off, dim=1, eps=1e-20).mean())


def model_checks(model: "torch.nn.Module", x: "torch.Tensor", y: "torch.Tensor",
                 ) -> list[tuple[int, str, str, float, str]]:
    """(exit, check, status, value, detail) for one model on a batch of clean images."""
    import torch

    from models.base import gradient_shapers

    out = []
    model.eval()
    with torch.no_grad():
        a, b = model.exits(x).logits, model.exits(x).logits
    same = bool(torch.equal(a, b))
    out.append((0, "deterministic", "ok" if same else "warn", float(same),
                "two eval passes give identical logits" if same else "eval forward is not deterministic"))
    for t in range(1, model.n_exits + 1):
        z = zero_gradient_fraction(model, x, y, t)
        out.append((t, "zero_gradient_fraction", "warn" if z > ZERO_GRAD_WARN else "ok", z,
                    f"{100 * z:.1f} % of input entries have exactly zero gradient at exit {t}"))
    if any(m.active for m in gradient_shapers(model)):  # a training-only shaper the paper protocol keeps
        c = rescaler_cosine(model, x, y)
        out.append((model.n_exits, "rescaler_effect", "ok", c,
                    f"cosine {c:.3f} between input gradients with MGNet's gradient shapers (rescaler, position "
                    "stop-gradient) on and off: attacks that keep them (paper protocol) follow "
                    + ("a different direction" if c < 0.9999 else "the same direction")))
    return out


def read_checks(path: Path) -> list[CheckRow]:
    """Rows of checks.csv ([] if absent)."""
    return parse_records(path, read_records(path, CHECK_COLUMNS, "checks"), lambda rec: CheckRow(
        **{c: (float(v) if c == "value" else int(v) if c == "exit" else v) for c, v in zip(CHECK_COLUMNS, rec)}),
        "damaged check record")


def append_checks(path: Path, rows: Iterable[CheckRow]) -> None:
    """Atomic append, like results.csv."""
    append_records(path, CHECK_COLUMNS, [astuple(r) for r in rows])
