"""How sure each exit is of each image: what an early-exit policy thresholds (stored by
bench/store/confidence.py)."""

from __future__ import annotations

import math

import numpy as np
import torch


def exit_confidence(logits: torch.Tensor) -> np.ndarray:
    """(2, E, N) from per-exit logits (E, N, K): the largest softmax probability, and 1 − the
    softmax entropy over log K (1: all mass on one class; 0: uniform)."""
    p = logits.detach().float().softmax(-1)
    entropy = -(p * p.clamp_min(1e-12).log()).sum(-1) / math.log(max(p.shape[-1], 2))
    return torch.stack([p.amax(-1), (1 - entropy).clamp(0, 1)]).cpu().numpy()
