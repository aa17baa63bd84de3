"""The model contract: [0,1] images in, final-exit logits out; per-exit outputs on request."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from bench.core.errors import NonFiniteLogits


@dataclass(frozen=True)
class Exits:
    """Per-exit logits (E,N,K) from one pass, and glimpse boxes (E,N,4) as image fractions."""

    logits: Tensor
    boxes: Tensor | None = None  # (x0, y0, x1, y1) in [0,1] of width/height; None: whole image


class BenchModel(nn.Module):
    """Base of every comparable model: holds the normalization, nothing else."""

    def __init__(self, mean: Sequence[float] | None, std: Sequence[float] | None) -> None:
        super().__init__()
        self.normalizes = mean is not None
        if mean is not None and std is not None:
            # Non-persistent: checkpoints hold only learned weights, so official keys map 1:1.
            self.register_buffer("mean", torch.tensor(mean).view(1, -1, 1, 1), persistent=False)
            self.register_buffer("std", torch.tensor(std).view(1, -1, 1, 1), persistent=False)

    @property
    def n_exits(self) -> int:
        return 1

    def normalize(self, x: Tensor) -> Tensor:
        """Map [0,1] pixels to the space the weights were trained in."""
        return (x - self.mean) / self.std if self.normalizes else x

    def forward(self, x: Tensor) -> Tensor:
        return self.exits(x).logits[-1]

    def exits(self, x: Tensor) -> Exits:
        """All exits' logits from a single pass."""
        return self.exits_upto(x, self.n_exits)

    def exits_upto(self, x: Tensor, n: int) -> Exits:
        """Exits 1..n from one pass that computes nothing beyond exit n."""
        raise NotImplementedError

    def at_exit(self, t: int) -> BenchModel:
        """A parameter-sharing view whose forward returns exit t's logits (for FLOPs, attacks)."""
        if t != self.n_exits:
            check_exit(t, self.n_exits)
            return ExitView(self, t)
        return self

    def train_loss(self, x: Tensor, y: Tensor) -> Tensor:
        """The training objective; plain cross-entropy unless the model says otherwise."""
        return nn.functional.cross_entropy(self(x), y)


def check_exit(t: int, n_exits: int) -> None:
    """Reject exit numbers outside 1..n_exits with a plain message."""
    if not 1 <= t <= n_exits:
        raise ValueError(f"exit {t} out of range 1..{n_exits}")


class ExitView(BenchModel):
    """Runs the parent up to exit t and returns that exit's logits."""

    def __init__(self, parent: BenchModel, t: int) -> None:
        super().__init__(None, None)
        self.parent = parent
        self.t = t

    @property
    def n_exits(self) -> int:
        return 1

    def exits_upto(self, x: Tensor, n: int) -> Exits:
        check_exit(n, 1)
        out = self.parent.exits_upto(x, self.t)
        return Exits(out.logits[-1:], None if out.boxes is None else out.boxes[-1:])


class Classifier(BenchModel):
    """Wraps any single-exit classifier that maps normalized images to logits."""

    def __init__(
        self, net: nn.Module, mean: Sequence[float] | None, std: Sequence[float] | None
    ) -> None:
        super().__init__(mean, std)
        self.net = net

    def forward(self, x: Tensor) -> Tensor:
        return self.net(self.normalize(x))

    def exits_upto(self, x: Tensor, n: int) -> Exits:
        check_exit(n, 1)
        out = self(x)  # a dict or a tuple passes through, for the contract check to name
        return Exits(out.unsqueeze(0) if isinstance(out, Tensor) else out)


class _RescaleFn(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x: Tensor, factor: float) -> Tensor:  # type: ignore[override]
        ctx.factor = factor
        return x.view_as(x)

    @staticmethod
    def backward(ctx, g: Tensor) -> tuple[Tensor, None]:  # type: ignore[override]
        return g * ctx.factor, None


class GradShaper(nn.Module):
    """Identity forward that changes only the gradient: training shapes it, attacks must not."""

    def __init__(self, enabled: bool = True) -> None:
        super().__init__()
        self.enabled = enabled

    @property
    def active(self) -> bool:
        """Whether the backward pass differs from the identity's now."""
        return self.enabled


class GradRescale(GradShaper):
    """Identity forward, gradient times `factor` backward (MGNet's localization rescaler)."""

    def __init__(self, factor: float) -> None:
        super().__init__()
        self.factor = float(factor)

    @property
    def active(self) -> bool:
        return self.enabled and self.factor != 1.0

    def forward(self, x: Tensor) -> Tensor:
        return _RescaleFn.apply(x, self.factor) if self.active else x


class GradStop(GradShaper):
    """Identity forward; no gradient while enabled (MGNet's detached glimpse position in tokens)."""

    def forward(self, x: Tensor) -> Tensor:
        return x.detach() if self.active else x


def gradient_shapers(model: nn.Module) -> list[GradShaper]:
    """The model's gradient shapers, in module order."""
    return [m for m in model.modules() if isinstance(m, GradShaper)]


@contextlib.contextmanager
def true_gradient(model: nn.Module) -> Iterator[nn.Module]:
    """Switch every gradient shaper off: they shape training, and attacks must follow the real
    gradient of the function the model computes (its outputs do not change)."""
    shapers = gradient_shapers(model)
    before = [m.enabled for m in shapers]
    for m in shapers:
        m.enabled = False
    try:
        yield model
    finally:
        for m, b in zip(shapers, before):
            m.enabled = b


def as_bench_model(
    module: nn.Module, mean: Sequence[float] | None, std: Sequence[float] | None
) -> BenchModel:
    """Give a plain classifier the contract; a BenchModel passes through unchanged."""
    if isinstance(module, BenchModel):
        return module
    if not isinstance(module, nn.Module):
        raise TypeError(
            f"a model factory must return a torch.nn.Module, got {type(module).__name__}"
        )
    return Classifier(module, mean, std)


def predictions(logits: Tensor) -> Tensor:
    """The class of each row of logits (..., K); NonFiniteLogits where any row is not finite."""
    bad = ~torch.isfinite(logits).all(-1)
    if bool(bad.any()):
        raise NonFiniteLogits(int(bad.reshape(-1, bad.shape[-1]).any(0).sum()))
    return logits.argmax(-1)


def looks_like_probabilities(logits: Tensor) -> bool:
    """Whether rows of (N, K) outputs are probabilities (in [0,1], summing to 1), not logits."""
    with torch.no_grad():
        sums = logits.double().sum(1)
        in_unit = bool(((logits >= 0) & (logits <= 1)).all())
        return in_unit and bool(torch.allclose(sums, torch.ones_like(sums), atol=1e-4))
