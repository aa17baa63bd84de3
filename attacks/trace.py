"""What an attack's optimisation did per image, for the attack-failure indicators (Pintor et al.,
NeurIPS 2022, "Indicators of attack failure"): the loss at each step, and images without gradient.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch
from torch import Tensor

RISING = 0.01  # relative loss gain over the last steps that counts as not converged


@dataclass
class Trace:
    """Filled by an attack call: `loss` (N, steps), NaN once an image stopped; `zero_grad` (N,),
    True where an image's input gradient was exactly zero at the first step."""

    loss: Tensor = field(default_factory=lambda: torch.empty(0, 0))
    zero_grad: Tensor = field(default_factory=lambda: torch.empty(0, dtype=torch.bool))

    def start(self, n: int, steps: int, device: torch.device) -> None:
        """Room for n images over `steps` steps, on the attack's device (no sync per step)."""
        self.loss = torch.full((n, steps), math.nan, device=device)
        self.zero_grad = torch.zeros(n, dtype=torch.bool, device=device)

    def put(self, step: int, live: Tensor, loss: Tensor, grad: Tensor) -> None:
        """The step's per-image loss and gradient of the images at batch positions `live`."""
        self.loss[live, step] = loss.detach().float()
        if step == 0:
            self.zero_grad[live] = grad.detach().flatten(1).abs().amax(1) == 0


def window(steps: int) -> int:
    """How many last steps the convergence check looks at: a fifth, at least one."""
    return max(1, math.ceil(steps / 5))


def still_rising(loss: Tensor) -> Tensor:
    """(N,) bool: the loss gained more than RISING (relative) over the last fifth of the steps,
    so more steps would likely have found more (only images that ran every step)."""
    steps = loss.shape[1]
    if steps < 3:
        return torch.zeros(loss.shape[0], dtype=torch.bool)
    w = window(steps)
    before, last = loss[:, : steps - w].amax(1), loss[:, steps - w :].amax(1)
    ran_all = ~loss.isnan().any(1)
    return ran_all & (last > before + RISING * before.abs().clamp(min=1e-3))


def traces(attack: object) -> bool:
    """Whether an attack records a Trace when given one (it says so: `traces_loss`)."""
    return bool(getattr(attack, "traces_loss", False))


def failure_counts(trace: Trace, robust: Tensor) -> dict[str, tuple[int, int]]:
    """check -> (images raising it, images it was counted over), for one attack call whose images
    ended `robust` (bool, in the call's order); docs/checks.md explains both checks."""
    robust = robust.cpu()
    rising = still_rising(trace.loss.cpu()) & robust
    return {
        "attack_not_converged": (int(rising.sum()), int(robust.sum())),
        "attack_zero_gradient": (int(trace.zero_grad.cpu().sum()), len(robust)),
    }
