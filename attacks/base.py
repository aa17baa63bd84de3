"""What every attack shares: the contract, argument checks, projections and model guards.

An attack maps clean [0,1] images to adversarial [0,1] images. It sees a model that returns one
logits tensor (N, K) from [0,1] inputs; normalization stays inside the model.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Iterator
from typing import Protocol

import torch
from torch import Tensor, nn

from bench.core.errors import BenchError
from bench.models.base import looks_like_probabilities

NORMS = ("linf", "l2")


class Attack(Protocol):
    """Clean [0,1] images -> adversarial [0,1] images. No metrics, no printing, no files."""

    def __call__(self, model: nn.Module, x: Tensor, y: Tensor, *, seeds: Tensor) -> Tensor: ...


def check_args(eps: float, norm: str, steps: int = 1, step_size: float = 0.0) -> None:
    """Reject out-of-range settings with one clear message (ε in pixel units of the [0,1] range)."""
    if norm not in NORMS:
        raise BenchError(f"unknown norm {norm!r} (known: {', '.join(NORMS)})")
    if not math.isfinite(eps) or eps < 0 or (norm == "linf" and eps > 1):
        raise BenchError(
            f"epsilon must be in [0, 1] for linf (pixel units; 4/255 = {4 / 255:.5f}) "
            f"and non-negative for l2, got {eps}"
        )
    if steps < 1:
        raise BenchError(f"steps must be positive, got {steps}")
    if step_size < 0:
        raise BenchError(f"step size must be non-negative, got {step_size}")


def per_image_noise(seeds: Tensor, shape: torch.Size, kind: str, device: torch.device) -> Tensor:
    """One draw per image from its own generator: uniform in [-1, 1] or standard normal."""
    out = torch.empty(shape)
    for i, s in enumerate(seeds.tolist()):
        g = torch.Generator().manual_seed(int(s))
        if kind == "uniform":
            out[i] = torch.rand(shape[1:], generator=g) * 2 - 1
        else:
            out[i] = torch.randn(shape[1:], generator=g)
    return out.to(device)


def random_start(x: Tensor, seeds: Tensor, eps: float, norm: str) -> Tensor:
    """A uniform point of the L∞ ball, or a uniform radius along a Gaussian direction for L2, drawn
    from each image's own seed, in [0,1]."""
    if norm == "linf":
        delta = eps * per_image_noise(seeds, x.shape, "uniform", x.device)
    else:
        d = per_image_noise(seeds, x.shape, "normal", x.device)
        r = (
            torch.stack(
                [
                    torch.rand((), generator=torch.Generator().manual_seed(int(k) + 1))
                    for k in seeds.tolist()
                ]
            )
            .to(x.device)
            .view(-1, 1, 1, 1)
        )
        delta = d / (l2_norms(d) + 1e-12) * r * eps
    return (x + delta).clamp(0.0, 1.0)


def ascent_step(
    x: Tensor, x_adv: Tensor, grad: Tensor, size: float, eps: float, norm: str
) -> Tensor:
    """One step up the loss (signed for L∞, normalised per image for L2), projected back."""
    if norm == "linf":
        step = size * grad.sign()
    else:
        step = size * grad / (l2_norms(grad) + 1e-10)
    return project(x, x_adv + step, eps, norm)


def l2_norms(d: Tensor) -> Tensor:
    """Per-image L2 norm, shaped to broadcast over (N, C, H, W)."""
    return d.flatten(1).norm(p=2, dim=1).view(-1, *([1] * (d.ndim - 1)))


def check_in_threat_model(
    x: Tensor, x_adv: Tensor, eps: float, norm: str, who: str, tol: float = 1e-5
) -> None:
    """Refuse another library's adversarial images outside the ε-ball or [0,1]: illegal breaks."""
    x_adv = x_adv.detach()
    d = (x_adv - x.detach()).flatten(1)
    size = d.abs().amax(1) if norm == "linf" else d.norm(p=2, dim=1)
    worst = float(size.max()) if len(size) else 0.0
    lo, hi = (float(x_adv.min()), float(x_adv.max())) if x_adv.numel() else (0.0, 1.0)
    if (
        not torch.isfinite(x_adv).all()
        or worst > eps * (1 + tol) + tol
        or lo < -tol
        or hi > 1 + tol
    ):
        raise BenchError(
            f"{who} returned images outside the threat model (largest {norm} perturbation "
            f"{worst:.6g} for ε = {eps:.6g}, values in [{lo:.6g}, {hi:.6g}]): they are not scored"
        )


def project(x: Tensor, x_adv: Tensor, eps: float, norm: str) -> Tensor:
    """Onto the ε-ball around x, then into [0,1]."""
    d = x_adv - x
    if norm == "linf":
        d = d.clamp(-eps, eps)
    else:
        d = d * torch.clamp(eps / (l2_norms(d) + 1e-12), max=1.0)
    return (x + d).clamp(0.0, 1.0)


class LogitsGuard(nn.Module):
    """Lets only a tensor of logits (N, K) through: dicts, tuples and probabilities are errors."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model
        self._checked = False

    def forward(self, x: Tensor) -> Tensor:
        out = self.model(x)
        if not isinstance(out, Tensor):
            raise BenchError(
                f"model returned {type(out).__name__}; attacks need a tensor of logits (N, K)"
            )
        if out.ndim != 2 or out.shape[0] != x.shape[0]:
            raise BenchError(
                f"model returned shape {tuple(out.shape)}; attacks need logits ({x.shape[0]}, K)"
            )
        if not self._checked:
            if looks_like_probabilities(out):
                raise BenchError(
                    "model outputs look like probabilities (in [0,1], rows sum to 1); "
                    "return logits: cross-entropy on probabilities gives vanishing gradients"
                )
            self._checked = True
        return out


class PassCounter(nn.Module):
    """Counts images through forward and backward, whatever the attack library does.

    A backward counts the images whose logits received a gradient: an image an attack has stopped
    rides along in its batch's backward with a zero gradient and is not counted, so the counts are
    a property of each image's own trajectory, not of how images were batched.
    """

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model
        self.n_forward = 0
        self._backward: list[Tensor] = []  # counts left on the device until read: no sync per step
        self._counted = 0  # those already read

    @property
    def n_backward(self) -> int:
        self._counted += int(sum(int(c) for c in self._backward))
        self._backward.clear()
        return self._counted

    def add(self, n_forward: int, n_backward: int) -> None:
        """Count passes made before (an interrupted attack's, restored with its state)."""
        self.n_forward += int(n_forward)
        self._counted += int(n_backward)

    def forward(self, x: Tensor) -> Tensor:
        out = self.model(x)
        self.n_forward += x.shape[0]
        if out.requires_grad:
            out.register_hook(
                lambda g: self._backward.append(g.detach().flatten(1).ne(0).any(1).sum())
            )
        return out


@contextlib.contextmanager
def attack_mode(model: nn.Module) -> Iterator[nn.Module]:
    """Eval mode and frozen weights while attacking; module flags restored after, even on error."""
    modes = [(m, m.training) for m in model.modules()]
    grads = [(p, p.requires_grad) for p in model.parameters()]
    model.eval()
    for p, _ in grads:
        p.requires_grad_(False)  # only input gradients are needed: skip weight-gradient work
    try:
        yield model
    finally:
        for m, t in modes:
            m.training = t
        for p, r in grads:
            p.requires_grad_(r)
