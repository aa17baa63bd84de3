"""What a model must return before the harness spends any work on it, checked on a probe batch.

Per exit: a floating tensor of logits (E, N, K) with K the classes its card declares, finite on
every probe image, and not probabilities. A model that fails gets one line naming the fix, before
a results folder, a checkpoint or a cache entry is written (docs/models.md, "Checks before
evaluation").
"""

from __future__ import annotations

import torch

from bench.core.errors import BenchError, first_line
from bench.data import ImageSet, first_images, to_unit
from bench.load.specs import LoadedModel
from bench.models.base import looks_like_probabilities

PROBE_IMAGES = 16


def probe_batch(images: ImageSet, n: int = PROBE_IMAGES) -> torch.Tensor:
    """The first n images of the fixed evaluation order in [0,1]: one probe for every model."""
    _, imgs, _ = first_images(images, n)
    return to_unit(imgs, torch.device("cpu"))


def _logits(lm: LoadedModel, x: torch.Tensor) -> torch.Tensor:
    """Every exit's output on the probe batch, or one line saying why there is none."""
    name = lm.card.name
    try:
        with torch.no_grad():
            out = lm.model.eval().exits(x)
    except BenchError:
        raise
    except Exception as e:  # noqa: BLE001  (a user's model can raise anything)
        raise BenchError(
            f"{name} fails on a probe batch of {len(x)} images: {type(e).__name__}: {first_line(e)}"
        ) from None
    logits = getattr(out, "logits", out)
    if not isinstance(logits, torch.Tensor):
        raise BenchError(f"{name} returns {type(logits).__name__}; it must return a logits tensor")
    return logits


def _check_shape(lm: LoadedModel, logits: torch.Tensor, n: int) -> None:
    card, e = lm.card, lm.model.n_exits
    want = (e, n, card.num_classes)
    if logits.ndim == 3 and logits.shape[:2] == want[:2] and logits.shape[2] != card.num_classes:
        k = logits.shape[2]
        raise BenchError(
            f"{card.name} returns {k} logits per image but is registered with num_classes="
            f"{card.num_classes}: make its head output {card.num_classes}, or register it with "
            f"num_classes={k} for a data set of {k} classes"
        )
    if tuple(logits.shape) != want:
        raise BenchError(
            f"{card.name} returns outputs of shape {tuple(logits.shape)} for {n} images; expected "
            f"logits (N, {card.num_classes}) per exit"
        )
    if not logits.is_floating_point():
        raise BenchError(f"{card.name} returns {logits.dtype} outputs; expected floating logits")


def _check_values(lm: LoadedModel, logits: torch.Tensor) -> None:
    name = lm.card.name
    bad = ~torch.isfinite(logits).all(dim=2)  # (E, N)
    if bad.any():
        n_bad, exits = int(bad.any(0).sum()), (bad.any(1).nonzero().squeeze(1) + 1).tolist()
        raise BenchError(
            f"{name} returns non-finite logits (NaN or Inf) for {n_bad} of {logits.shape[1]} probe "
            f"images at exit(s) {', '.join(map(str, exits))}: argmax would count them as a class"
        )
    for t, z in enumerate(logits, start=1):
        if looks_like_probabilities(z):
            raise BenchError(
                f"{name} returns probabilities at exit {t} (in [0,1], rows sum to 1); return "
                "logits (drop the final softmax): attacks on probabilities get vanishing gradients"
            )


def check_outputs(lm: LoadedModel, x: torch.Tensor) -> None:
    """Refuse, with one line, a model whose outputs on the probe batch break the contract."""
    logits = _logits(lm, x)
    _check_shape(lm, logits, len(x))
    _check_values(lm, logits.float())
