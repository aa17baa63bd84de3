"""PGD (Madry et al., ICLR 2018): projected gradient ascent on cross-entropy, L∞ or L2.

Arguments: ε (pixel units of [0,1]), step size, steps, restarts, random start. Inputs: x (N,C,H,W)
in [0,1], y (N,) int64, seeds (N,) int64: each image's random start comes from its own seed, so
results do not depend on batch size or order. Output in [0,1] within the ε-ball. Steps follow
torchattacks 3.5.1 (signed step for L∞, per-image normalised step for L2) but sum the cross-entropy
over the batch where torchattacks averages it: its L2 step divides by ‖g‖ + 1e-10, so with a mean an
image's step depends on the batch size wherever gradients are that small; ours equals torchattacks
run one image at a time. With restarts, an image keeps the first adversarial example that fools the
model.

`early_stop` (the harness's default for strict PGD): an image whose current iterate already fools
the model keeps that iterate and leaves the batch, as AutoAttack's APGD keeps its best point. An
image counts as broken if any iterate broke it, so the robust set is a subset of final-iterate PGD's
(the trajectories agree until an image stops), and stopped images cost no further passes. Off, the
attack returns the last iterate for every image, step for step as torchattacks does.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar, Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from bench.attacks.base import ascent_step, check_args, random_start
from bench.attacks.trace import Trace
from bench.core.errors import BenchError


@dataclass(frozen=True, slots=True)
class PGD:
    """Strict-protocol PGD: random start, projection onto the ε-ball and [0,1] after every step."""

    eps: float
    step_size: float
    steps: int
    norm: Literal["linf", "l2"] = "linf"
    restarts: int = 1
    random_start: bool = True
    early_stop: bool = False
    traces_loss: ClassVar[bool] = True  # __call__ takes a Trace (attacks/trace.py)

    def __post_init__(self) -> None:
        check_args(self.eps, self.norm, self.steps, self.step_size)
        if self.restarts < 1:
            raise BenchError(f"restarts must be positive, got {self.restarts}")
        if self.restarts > 1 and not self.random_start:
            raise BenchError(
                "restarts without a random start repeat the same run: use one, or a random start"
            )

    def _run(
        self, model: nn.Module, x: Tensor, y: Tensor, x_adv: Tensor, trace: Trace | None = None
    ) -> Tensor:
        out = x_adv.detach().clone()
        live = torch.arange(len(x), device=x.device)  # batch positions of the images still attacked
        for i in range(self.steps):
            leaf = x_adv.detach().requires_grad_(True)
            logits = model(leaf)
            keep = slice(None)
            if self.early_stop:
                fooled = logits.detach().argmax(1) != y
                out[live[fooled]] = leaf.detach()[fooled]
                keep = ~fooled
                if not keep.any():
                    return out
                # this pass ran on the whole batch; the images left go on from here
                live, x, y = live[keep], x[keep], y[keep]
            ce = F.cross_entropy(logits[keep], y, reduction="none")
            (grad,) = torch.autograd.grad(ce.sum(), leaf)
            grad, x_adv = grad[keep], leaf.detach()[keep]
            if trace is not None:
                trace.put(i, live, ce.detach(), grad)
            x_adv = ascent_step(x, x_adv, grad, self.step_size, self.eps, self.norm)
        out[live] = x_adv
        return out

    def _start(self, x: Tensor, seeds: Tensor, restart: int) -> Tensor:
        if not self.random_start:
            return x.clone()
        return random_start(x, seeds + restart * 7919, self.eps, self.norm)

    def __call__(
        self, model: nn.Module, x: Tensor, y: Tensor, *, seeds: Tensor, trace: Trace | None = None
    ) -> Tensor:
        """`trace`, if given, records the first run's per-image loss (restarts are not traced)."""
        x = x.detach()
        if trace is not None:
            trace.start(len(x), self.steps, x.device)
        if self.eps == 0:
            return x.clone()
        best = self._run(model, x, y, self._start(x, seeds, 0), trace)
        for r in range(1, self.restarts):
            with torch.no_grad():
                robust = model(best).argmax(1) == y
            if not robust.any():
                break
            idx = robust.nonzero().squeeze(1)
            # seeds live on the CPU; indexing them with a CUDA tensor raises
            best[idx] = self._run(model, x[idx], y[idx], self._start(x[idx], seeds[idx.cpu()], r))
        return best
