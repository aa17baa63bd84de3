"""Attacks on a multi-exit model run with an early-exit policy (docs/protocol.md#early-exits).

The policy takes the first exit whose confidence reaches τ, so the exit an image takes is part of
the function. The argmax over exits and the threshold are not differentiable; both attacks below
are, and neither depends on τ, so one attacked image scores the policy at every τ:

- `union`: PGD on the sum of every exit's cross-entropy. Whichever exit the policy takes, a wrong
  answer there serves the attacker. An image stops once every exit is wrong.
- `slowdown`: PGD on the sum over the exits before the last of −log(largest softmax probability),
  which lowers their confidence so the policy goes on to later, costlier exits (a compute attack,
  after Hong et al., ICLR 2021, "A Panda? No, it's a Sloth"). It runs every step.

Both see the model through `ExitStack`, which returns every exit's logits (N, E, K) from [0,1]
images. Strict protocol: random start from each image's seed, projection and clamp every step.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from bench.attacks.base import ascent_step, check_args, random_start
from bench.core.errors import BenchError


class ExitStack(nn.Module):
    """Every exit's logits of a multi-exit model, batch first (N, E, K), from [0,1] images."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, x: Tensor) -> Tensor:
        logits = self.model.exits(x).logits
        if not isinstance(logits, Tensor) or logits.ndim != 3 or logits.shape[1] != len(x):
            raise BenchError(f"expected per-exit logits (E, {len(x)}, K) from the model")
        return logits.transpose(0, 1)


def union_loss(logits: Tensor, y: Tensor) -> Tensor:
    """(N,) the sum of every exit's cross-entropy; logits (N, E, K)."""
    n, e, k = logits.shape
    ce = F.cross_entropy(logits.reshape(n * e, k), y.repeat_interleave(e), reduction="none")
    return ce.view(n, e).sum(1)


def slowdown_loss(logits: Tensor, y: Tensor) -> Tensor:
    """(N,) −log(largest softmax probability) summed over every exit but the last."""
    return -logits[:, :-1].log_softmax(-1).amax(-1).sum(1)


LOSSES = {"union": union_loss, "slowdown": slowdown_loss}


@dataclass(frozen=True, slots=True)
class ExitPolicyPGD:
    """PGD against a multi-exit model's policy: wrong at every exit, or unsure at the early ones."""

    eps: float
    step_size: float
    steps: int
    goal: Literal["union", "slowdown"] = "union"
    norm: Literal["linf", "l2"] = "linf"

    def __post_init__(self) -> None:
        check_args(self.eps, self.norm, self.steps, self.step_size)
        if self.goal not in LOSSES:
            raise BenchError(f"unknown goal {self.goal!r} (known: {', '.join(LOSSES)})")

    def __call__(self, model: nn.Module, x: Tensor, y: Tensor, *, seeds: Tensor) -> Tensor:
        """Adversarial images; `model` returns (N, E, K) as ExitStack does."""
        x = x.detach()
        if self.eps == 0:
            return x.clone()
        x_adv = random_start(x, seeds, self.eps, self.norm)
        out, live = x_adv.clone(), torch.arange(len(x), device=x.device)
        for _ in range(self.steps):
            leaf = x_adv.detach().requires_grad_(True)
            logits = model(leaf)
            keep = torch.ones(len(y), dtype=torch.bool, device=y.device)
            if self.goal == "union":  # done once every exit is wrong
                keep = (logits.detach().argmax(-1) == y[:, None]).any(1)
                out[live[~keep]] = leaf.detach()[~keep]
                if not keep.any():
                    return out
            loss = LOSSES[self.goal](logits[keep], y[keep])
            (grad,) = torch.autograd.grad(loss.sum(), leaf)
            live, x, y = live[keep], x[keep], y[keep]
            x_adv = ascent_step(
                x, leaf.detach()[keep], grad[keep], self.step_size, self.eps, self.norm
            )
        out[live] = x_adv
        return out
