"""PGD (Madry et al., ICLR 2018): projected gradient ascent on cross-entropy, L∞ or L2.

Arguments: ε (pixel units of [0,1]), step size, steps, restarts, random start. Inputs: x (N,C,H,W)
in [0,1], y (N,) int64, seeds (N,) int64: each image's random start comes from its own seed, so
results do not depend on batch size or order. Output in [0,1] within the ε-ball. Steps follow
torchattacks 3.5.1 (signed step for L∞, per-image normalised step for L2, mean cross-entropy).
With restarts, an image keeps the first adversarial example that fools the model.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from attacks.base import check_args, l2_norms, per_image_noise, project


@dataclass(frozen=True, slots=True)
class PGD:
    """Strict-protocol PGD: random start, projection onto the ε-ball and [0,1] after every step."""

    eps: float
    step_size: float
    steps: int
    norm: Literal["linf", "l2"] = "linf"
    restarts: int = 1
    random_start: bool = True

    def __post_init__(self) -> None:
        check_args(self.eps, self.norm, self.steps, self.step_size)
        if self.restarts < 1:
            raise ValueError(f"restarts must be positive, got {self.restarts}")

    def _start(self, x: Tensor, seeds: Tensor, restart: int) -> Tensor:
        if not self.random_start:
            return x.clone()
        s = seeds + restart * 7919
        if self.norm == "linf":
            delta = self.eps * per_image_noise(s, x.shape, "uniform", x.device)
        else:
            d = per_image_noise(s, x.shape, "normal", x.device)
            r = torch.stack([torch.rand((), generator=torch.Generator().manual_seed(int(k) + 1))
                             for k in s.tolist()]).to(x.device).view(-1, 1, 1, 1)
            delta = d / (l2_norms(d) + 1e-12) * r * self.eps
        return (x + delta).clamp(0.0, 1.0)

    def _run(self, model: nn.Module, x: Tensor, y: Tensor, x_adv: Tensor) -> Tensor:
        for _ in range(self.steps):
            x_adv = x_adv.detach().requires_grad_(True)
            (grad,) = torch.autograd.grad(F.cross_entropy(model(x_adv), y), x_adv)
            if self.norm == "linf":
                step = self.step_size * grad.sign()
            else:
                step = self.step_size * grad / (l2_norms(grad) + 1e-10)
            x_adv = project(x, x_adv.detach() + step, self.eps, self.norm)
        return x_adv.detach()

    def __call__(self, model: nn.Module, x: Tensor, y: Tensor, *, seeds: Tensor) -> Tensor:
        x = x.detach()
        if self.eps == 0:
            return x.clone()
        best = self._run(model, x, y, self._start(x, seeds, 0))
        for r in range(1, self.restarts):
            with torch.no_grad():
                robust = model(best).argmax(1) == y
            if not robust.any():
                break
            idx = robust.nonzero().squeeze(1)
            best[idx] = self._run(model, x[idx], y[idx], self._start(x[idx], seeds[idx], r))
        return best
