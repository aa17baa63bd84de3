"""torchattacks 3.5.1 as an alternative backend (and the speed/accuracy peer of our PGD).

torchattacks draws random starts from the global torch RNG; each batch runs inside
`torch.random.fork_rng` seeded from its first image's seed, so the caller's RNG is untouched.
Normalization is never configured on it (models normalize inside). It only ever sees a module
returning one logits tensor.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch
from torch import Tensor, nn

from bench.attacks.base import check_args


@dataclass(frozen=True, slots=True)
class TorchattacksAttack:
    """torchattacks FGSM, PGD or PGDL2 behind the project's attack contract."""

    kind: Literal["fgsm", "pgd"]
    eps: float
    norm: Literal["linf", "l2"] = "linf"
    step_size: float = 0.0
    steps: int = 1
    random_start: bool = True

    def __post_init__(self) -> None:
        check_args(self.eps, self.norm, self.steps, self.step_size)
        if self.kind == "fgsm" and self.norm != "linf":
            raise ValueError("FGSM is an L∞ attack")

    def build(self, model: nn.Module):  # type: ignore[no-untyped-def]
        import torchattacks

        if self.kind == "fgsm":
            return torchattacks.FGSM(model, eps=self.eps)
        if self.norm == "linf":
            return torchattacks.PGD(
                model,
                eps=self.eps,
                alpha=self.step_size,
                steps=self.steps,
                random_start=self.random_start,
            )
        return torchattacks.PGDL2(
            model,
            eps=self.eps,
            alpha=self.step_size,
            steps=self.steps,
            random_start=self.random_start,
        )

    def __call__(self, model: nn.Module, x: Tensor, y: Tensor, *, seeds: Tensor) -> Tensor:
        if self.eps == 0:
            return x.clone()
        # torchattacks puts a module it finds in training mode back into it after the attack
        model.eval()
        atk = self.build(model)
        devices = [x.device] if x.device.type == "cuda" else []
        with torch.random.fork_rng(devices=devices):
            torch.manual_seed(int(seeds[0]))
            return atk(x, y).detach()
