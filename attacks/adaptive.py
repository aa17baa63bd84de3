"""Adaptive PGD for models that read the image through glimpses (docs/attacks.md).

Strict protocol: ε in [0,1] pixel units, random start, projection and clamp after every step, the
model's true gradient (the harness switches its training-only shapers off). Four attacks share this
loop, on any model that declares a glimpse sampler (models/sampler.py):

- `bpda`: the forward pass is the model's own; the backward pass replaces point sampling by the
  sampler's smooth surrogate, so every pixel under a glimpse gets gradient (BPDA: Athalye, Carlini
  and Wagner, ICML 2018).
- EOT (`eot` > 1): BPDA gradients averaged over `eot` random placements of every glimpse the model
  places from the image, each of its (s, u, v) moved by up to ±`jitter` in normalized coordinates
  (EOT: Athalye et al. 2018); a fixed glimpse (MGNet's first, the whole image) is not moved.
- `look` > 0: BPDA on cross-entropy plus `look` times the L1 distance of each glimpse's (s, u, v)
  from where the clean image put it, so a perturbation can win by misdirecting attention.
- `route="smooth"`: crafted on the smoothed surrogate (the same weights, glimpses taken by the
  smooth sampler forward and backward): transfer from a surrogate (Tramèr et al., NeurIPS 2020).

Whatever the gradient, each image stops at its first iterate that fools the model's own forward, as
the harness's PGD does, and the harness scores the result on the model's own forward. Seeds: the
random start and each step's glimpse placements come from each image's own seed, so results do not
depend on batch size or order.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar, Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from bench.attacks.base import ascent_step, check_args, per_image_noise, random_start
from bench.attacks.glimpse_control import steer
from bench.attacks.trace import Trace
from bench.core.errors import BenchError

Glimpses = tuple[Tensor | None, int]  # the clean image's affines (G, N, 3) if needed, and G


@dataclass(frozen=True, slots=True)
class AdaptivePGD:
    """PGD through a glimpse sampler: BPDA, EOT over glimpse placement, misdirection, surrogate."""

    eps: float
    step_size: float
    steps: int
    norm: Literal["linf", "l2"] = "linf"
    route: Literal["bpda", "smooth"] = "bpda"
    eot: int = 1
    jitter: float = 0.0
    look: float = 0.0
    traces_loss: ClassVar[bool] = True  # __call__ takes a Trace (attacks/trace.py)

    def __post_init__(self) -> None:
        check_args(self.eps, self.norm, self.steps, self.step_size)
        if self.route not in ("bpda", "smooth"):
            raise BenchError(f"unknown sampler route {self.route!r} (known: bpda, smooth)")
        if self.eot < 1 or self.jitter < 0 or self.look < 0:
            raise BenchError(
                f"eot must be positive, jitter and look non-negative, got {self.eot}, "
                f"{self.jitter}, {self.look}"
            )
        if self.eot > 1 and self.jitter == 0:
            raise BenchError("eot > 1 without jitter averages the same gradient: give a jitter")

    @property
    def scores_itself(self) -> bool:
        """Whether the gradient pass's forward is the model's own (it then decides stopping)."""
        return self.route == "bpda" and self.jitter == 0

    def _clean_glimpses(self, model: nn.Module, x: Tensor) -> Glimpses:
        """Where the clean images look, and how many glimpses a forward takes."""
        if not (self.look or self.jitter):
            return None, 0
        with torch.no_grad(), steer(model, record=True) as seen:
            model(x)
        return (torch.stack(seen) if seen else None), len(seen)

    def _offsets(self, seeds: Tensor, step: int, k: int, n_glimpses: int) -> Tensor | None:
        """(G, N, 3) glimpse displacements of EOT sample k at this step, from each image's seed."""
        if not self.jitter or not n_glimpses:
            return None
        s = seeds + (1 + step * self.eot + k) * 104_729
        d = per_image_noise(s, torch.Size((len(seeds), n_glimpses, 3)), "uniform", seeds.device)
        return self.jitter * d.transpose(0, 1)

    def _objective(
        self, logits: Tensor, y: Tensor, seen: list[Tensor], anchor: Tensor | None
    ) -> Tensor:
        """Per-image loss to maximise: cross-entropy, plus the misdirection term when asked."""
        loss = F.cross_entropy(logits, y, reduction="none")
        if self.look and anchor is not None and seen:
            moved = (torch.stack(seen) - anchor).abs().sum(-1).sum(0)
            loss = loss + self.look * moved
        return loss

    def _gradient(
        self, model: nn.Module, x_adv: Tensor, y: Tensor, seeds: Tensor, step: int, g: Glimpses
    ) -> Tensor:
        """The objective's input gradient, averaged over the EOT samples."""
        anchor, n_glimpses = g
        leaf = x_adv.detach().requires_grad_(True)
        total = torch.zeros_like(leaf)
        for k in range(self.eot):
            offsets = self._offsets(seeds, step, k, n_glimpses)
            if offsets is not None:
                offsets = offsets.to(leaf.device)
            with steer(model, self.route, offsets, record=bool(self.look)) as seen:
                loss = self._objective(model(leaf), y, seen, anchor)
            total = total + torch.autograd.grad(loss.sum(), leaf)[0]
        return total / self.eot

    def _fooled_and_gradient(
        self, model: nn.Module, x_adv: Tensor, y: Tensor, seeds: Tensor, step: int, g: Glimpses
    ) -> tuple[Tensor, Tensor | None, Tensor | None]:
        """(fooled under the model's own forward; then, for the images left, the model's own
        cross-entropy, which the trace records, and the objective's gradient)."""
        if not self.scores_itself:
            with torch.no_grad():
                logits = model(x_adv)
            fooled = logits.argmax(1) != y
            if fooled.all():
                return fooled, None, None
            keep = ~fooled
            sub = (None if g[0] is None else g[0][:, keep], g[1])
            grad = self._gradient(model, x_adv[keep], y[keep], seeds[keep.cpu()], step, sub)
            return fooled, F.cross_entropy(logits[keep], y[keep], reduction="none"), grad
        leaf = x_adv.detach().requires_grad_(True)
        with steer(model, "bpda", record=bool(self.look)) as seen:
            logits = model(leaf)
        fooled = logits.detach().argmax(1) != y
        keep = ~fooled
        if not keep.any():
            return fooled, None, None
        anchor = None if g[0] is None else g[0][:, keep]
        loss = self._objective(logits[keep], y[keep], [a[keep] for a in seen], anchor)
        (grad,) = torch.autograd.grad(loss.sum(), leaf)
        ce = F.cross_entropy(logits.detach()[keep], y[keep], reduction="none")
        return fooled, ce, grad[keep]

    def __call__(
        self, model: nn.Module, x: Tensor, y: Tensor, *, seeds: Tensor, trace: Trace | None = None
    ) -> Tensor:
        """Adversarial images for x; `trace`, if given, records the model's own cross-entropy at
        every iterate."""
        x = x.detach()
        if trace is not None:
            trace.start(len(x), self.steps, x.device)
        if self.eps == 0:
            return x.clone()
        x_adv = random_start(x, seeds, self.eps, self.norm)
        out, g = x_adv.clone(), self._clean_glimpses(model, x)
        live = torch.arange(len(x), device=x.device)
        for step in range(self.steps):
            fooled, loss, grad = self._fooled_and_gradient(model, x_adv, y, seeds, step, g)
            out[live[fooled]] = x_adv[fooled]
            if loss is None or grad is None:
                return out
            keep = ~fooled
            live, x, y, x_adv = live[keep], x[keep], y[keep], x_adv[keep]
            seeds, g = seeds[keep.cpu()], (None if g[0] is None else g[0][:, keep], g[1])
            if trace is not None:
                trace.put(step, live, loss, grad)
            x_adv = ascent_step(x, x_adv, grad, self.step_size, self.eps, self.norm)
        out[live] = x_adv
        return out
