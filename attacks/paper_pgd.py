"""The official MGNet code's PGD, reproduced for comparison with the paper (not a sound evaluation).

What it does (shared reference mgnet.md §6-7): sign-gradient ascent on the cross-entropy of the
last exit, on *normalized* tensors, with ε = 4/255 and step 1/255 in that space (≈ 0.9/255 and
0.23/255 in pixels), 10 steps, no random start, no clamp to the image range, and MGNet's gradient
rescaler left active. Every exit is then scored on the same image.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from bench.attacks.base import check_args


@dataclass(frozen=True, slots=True)
class PaperPGD:
    """PGD in the model's normalized input space, as the official evaluation ran it."""

    eps: float = 4 / 255  # in normalized units
    step_size: float = 1 / 255
    steps: int = 10
    mean: tuple[float, ...] = ()  # the space the step and ε live in; () = the [0,1] pixel space
    std: tuple[float, ...] = ()

    def __post_init__(self) -> None:
        check_args(self.eps, "linf", self.steps, self.step_size)

    def with_space(self, model: nn.Module) -> PaperPGD:
        """The same attack in `model`'s own normalized space (its mean/std buffers)."""
        if not getattr(model, "normalizes", False):
            return self
        return replace(
            self, mean=tuple(model.mean.flatten().tolist()), std=tuple(model.std.flatten().tolist())
        )

    def __call__(self, model: nn.Module, x: Tensor, y: Tensor, *, seeds: Tensor) -> Tensor:
        c = x.shape[1]
        mean = torch.tensor(self.mean or (0.0,) * c, device=x.device).view(1, -1, 1, 1)
        std = torch.tensor(self.std or (1.0,) * c, device=x.device).view(1, -1, 1, 1)
        z = (x.detach() - mean) / std
        z_adv = z.clone()
        for _ in range(self.steps):
            z_adv.requires_grad_(True)
            loss = F.cross_entropy(model(z_adv * std + mean), y)
            (grad,) = torch.autograd.grad(loss, z_adv)
            z_adv = z_adv.detach() + self.step_size * grad.sign()
            z_adv = z + (z_adv - z).clamp(-self.eps, self.eps)  # no clamp to the image range
        return (z_adv * std + mean).detach()
