"""FGSM (Goodfellow et al., ICLR 2015): one signed-gradient step of size ε.

Distance: L∞. Inputs: x (N,C,H,W) in [0,1], y (N,) int64. Output in [0,1], ‖x_adv − x‖∞ ≤ ε.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from bench.attacks.base import check_args


@dataclass(frozen=True, slots=True)
class FGSM:
    """x + ε·sign(∇x CE), clamped to [0,1]; deterministic (seeds unused)."""

    eps: float

    def __post_init__(self) -> None:
        check_args(self.eps, "linf")

    def __call__(self, model: nn.Module, x: Tensor, y: Tensor, *, seeds: Tensor) -> Tensor:
        if self.eps == 0:
            return x.clone()
        x_adv = x.detach().clone().requires_grad_(True)
        (grad,) = torch.autograd.grad(F.cross_entropy(model(x_adv), y), x_adv)
        return (x + self.eps * grad.sign()).clamp(0.0, 1.0).detach()
