"""Glimpses: a square window of the image resampled to a fixed side, as in MGNet."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor


def glimpse_side(input_size: int, scale: float) -> int:
    """Side of a glimpse in pixels: the official int(H // scale) (224 // 2.33 = 96)."""
    return int(input_size // scale)


def take_glimpse(x: Tensor, affine: Tensor, side: int) -> Tensor:
    """Sample the window [u-s, u+s] x [v-s, v+s] (normalized coords) of x at side x side.

    `affine` is (N, 3) = (s, u, v); bilinear, zero padding, align_corners=True and no
    anti-aliasing, exactly the official generator (grid_sample on the normalized image).
    """
    s, u, v = affine.unbind(1)
    zero = torch.zeros_like(s)
    theta = torch.stack([torch.stack([s, zero, u], 1), torch.stack([zero, s, v], 1)], 1)
    grid = F.affine_grid(theta, [x.shape[0], x.shape[1], side, side], align_corners=True)
    return F.grid_sample(x, grid, mode="bilinear", padding_mode="zeros", align_corners=True)


def affine_to_box(affine: Tensor) -> Tensor:
    """(s, u, v) -> (x0, y0, x1, y1) as fractions of the image width and height."""
    s, u, v = affine.unbind(-1)
    return torch.stack([(u - s + 1) / 2, (v - s + 1) / 2, (u + s + 1) / 2, (v + s + 1) / 2], -1)
