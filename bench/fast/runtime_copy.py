"""The copy of a model that evaluation runs: eval-mode batch norm folded and channels_last, where
that keeps its logits (bench/fast/fold.py, bench/fast/layout.py). FLOPs, parameters and the model
checks are taken on the model as loaded.
"""

from __future__ import annotations

import copy
import logging

import torch

from bench.fast.fold import fold_batchnorm
from bench.fast.layout import layout

log = logging.getLogger(__name__)
FOLD_TOLERANCE = 1e-3  # largest logit difference from folding, relative to the largest logit


def runtime_copy(model: torch.nn.Module, input_size: int, seed: int = 0) -> torch.nn.Module:
    """The copy of `model` that evaluation runs: eval mode, batch norm folded and channels_last
    where that keeps its logits.

    Each candidate is checked as it will run, on a seeded probe batch (every exit's logits within
    FOLD_TOLERANCE of the largest): folded and channels_last, then channels_last alone, then the
    model as loaded. MGNet's glimpse recurrence amplifies rounding, so the layout alone can miss.
    """
    original = model.eval()
    device = next(original.parameters(), torch.empty(0)).device
    g = torch.Generator().manual_seed(seed)
    probe = torch.rand(2, 3, input_size, input_size, generator=g).to(device)

    def logits(m: torch.nn.Module) -> torch.Tensor:
        with torch.inference_mode():
            return m.exits(probe).logits if hasattr(m, "exits") else m(probe)

    want = logits(original)
    if not bool(torch.isfinite(want).all()):  # nothing to compare with: run what was loaded
        log.warning(
            "%s: non-finite logits on a random probe batch; evaluating it as loaded",
            type(model).__name__,
        )
        return copy.deepcopy(original)
    folded = copy.deepcopy(original)
    candidates = [("folded", layout(folded))] if fold_batchnorm(folded) else []
    candidates.append(("channels_last", layout(copy.deepcopy(original))))
    misses = []
    for what, m in candidates:
        worst = float((want - logits(m)).abs().max()) / max(1.0, float(want.abs().max()))
        if worst <= FOLD_TOLERANCE:
            if misses:
                log.warning(
                    "%s: %s changed its logits; evaluating it %s",
                    type(model).__name__,
                    ", ".join(misses),
                    "unfolded" if what == "channels_last" else what,
                )
            return m
        misses.append(
            f"{'folding batch norm' if what == 'folded' else 'the channels_last layout'} "
            f"({worst:.2g} relative)"
        )
    log.warning(
        "%s: %s changed its logits; evaluating it as loaded",
        type(model).__name__,
        ", ".join(misses),
    )
    return copy.deepcopy(original)
