"""The glimpse sampler: where a model reads its glimpses, and the hook adaptive attacks act on.

A model that looks at the image through glimpses calls a `GlimpseSampler` module for each one,
`sampler(x, affine, side)`. `sample` is the model's own sampling; `smooth` is a differentiable
surrogate that gives every pixel under a glimpse a gradient. A user's model declares its sampler by
holding one (a subclass where its sampling differs); attacks find it among the model's modules and
switch how it routes (attacks/glimpse_control.py). The model itself never changes the route.
"""

from __future__ import annotations

from typing import Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from bench.models.glimpse import take_glimpse

Route = Literal["own", "bpda", "smooth"]


def box_kernel(width: int) -> Tensor:
    """A centred 1-D box of `width` pixels (half weights at both ends when the width is even)."""
    if width % 2:
        w = torch.ones(width)
    else:
        w = torch.cat([torch.full((1,), 0.5), torch.ones(width - 1), torch.full((1,), 0.5)])
    return w / width


def box_blur(x: Tensor, width: int) -> Tensor:
    """x low-passed by a separable centred box of `width` pixels, borders replicated."""
    if width <= 1:
        return x
    k = box_kernel(width).to(x)
    c, r = x.shape[1], len(k) // 2
    x = F.pad(x, (r, r, r, r), mode="replicate")
    x = F.conv2d(x, k.view(1, 1, 1, -1).expand(c, 1, 1, -1), groups=c)
    return F.conv2d(x, k.view(1, 1, -1, 1).expand(c, 1, -1, 1), groups=c)


def sample_spacing(x: Tensor, affine: Tensor, side: int) -> Tensor:
    """(N,) pixels between neighbouring sample points of each image's glimpse."""
    return affine[:, 0].abs() * (max(x.shape[-2:]) - 1) / max(side - 1, 1)


def area_glimpse(x: Tensor, affine: Tensor, side: int) -> Tensor:
    """The glimpse of an image low-passed at the glimpse's own sampling rate (area resampling)."""
    widths = sample_spacing(x, affine.detach(), side).round().clamp(min=1).long()
    out = torch.empty(x.shape[0], x.shape[1], side, side, dtype=x.dtype, device=x.device)
    for w in widths.unique().tolist():
        at = (widths == w).nonzero().squeeze(1)
        out = out.index_put((at,), take_glimpse(box_blur(x[at], int(w)), affine[at], side))
    return out


class _ThroughSmooth(torch.autograd.Function):
    """The sampler's own output forward; the smooth surrogate's vector-Jacobian product backward."""

    @staticmethod
    def forward(  # type: ignore[override]
        ctx, x: Tensor, affine: Tensor, side: int, sampler: GlimpseSampler
    ) -> Tensor:
        ctx.save_for_backward(x, affine)
        ctx.side, ctx.sampler = side, sampler
        return sampler.sample(x, affine, side)

    @staticmethod
    def backward(  # type: ignore[override]
        ctx, g: Tensor
    ) -> tuple[Tensor | None, Tensor | None, None, None]:
        x, affine = ctx.saved_tensors
        need = ctx.needs_input_grad[:2]
        with torch.enable_grad():
            leaves = [t.detach().requires_grad_(n) for t, n in zip((x, affine), need)]
            out = ctx.sampler.smooth(*leaves, ctx.side)
            wanted = [t for t, n in zip(leaves, need) if n]
            got = iter(torch.autograd.grad(out, wanted, g, allow_unused=True) if wanted else ())
        gx, ga = (next(got) if n else None for n in need)
        return gx, ga, None, None


class GlimpseSampler(nn.Module):
    """Samples a glimpse (N, C, side, side) of x at affine (s, u, v); see the module docstring.

    Attack-side state, all off in a model as built: `route` ("own": the model's sampling;
    "bpda": its output, with the smooth surrogate's gradient; "smooth": the surrogate), `offsets`
    (G, N, 3) added to the t-th glimpse's (s, u, v) since they were set, where that glimpse is
    placed from the image (its affine has a gradient path), and `seen`, a list the affines asked
    for are appended to when it is not None.
    """

    def __init__(self) -> None:
        super().__init__()
        self.route: Route = "own"
        self.offsets: Tensor | None = None
        self.seen: list[Tensor] | None = None
        self.calls = 0

    def sample(self, x: Tensor, affine: Tensor, side: int) -> Tensor:
        """The model's own sampling: bilinear point sampling, as the official MGNet."""
        return take_glimpse(x, affine, side)

    def smooth(self, x: Tensor, affine: Tensor, side: int) -> Tensor:
        """A smooth stand-in for `sample`: the image low-passed at the glimpse's rate, sampled."""
        return area_glimpse(x, affine, side)

    def set_offsets(self, offsets: Tensor | None) -> None:
        """Offsets for the glimpses of the next forward passes, taken in call order from now."""
        self.offsets, self.calls = offsets, 0

    def forward(self, x: Tensor, affine: Tensor, side: int) -> Tensor:
        """The glimpse, routed and offset as the attack set (the model's own when nothing is)."""
        if self.seen is not None:
            self.seen.append(affine)
        if self.offsets is not None:
            # a glimpse placed from the image moves; a fixed one (no gradient path) stays
            if affine.requires_grad:
                affine = affine + self.offsets[self.calls % len(self.offsets)]
            self.calls += 1
        if self.route == "smooth":
            return self.smooth(x, affine, side)
        if self.route == "bpda":
            return _ThroughSmooth.apply(x, affine, side, self)
        return self.sample(x, affine, side)
