"""Where a model meets a condition: images in, per-image correctness per exit out."""
from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np
import torch
from tqdm import tqdm

from bench.conditions import Condition
from bench.data import ImageSet, iter_batches, to_unit
from bench.errors import BenchError


@dataclass(frozen=True)
class Correct:
    """Per-image correctness: index (N,), correct (E,N) bool; plus the cost of producing it."""

    index: np.ndarray
    correct: np.ndarray
    seconds: float
    n_forward: int


def clean_correct(model: torch.nn.Module, images: ImageSet, indices: np.ndarray, *, batch_size: int,
                  device: torch.device, workers: int = 0, desc: str = "") -> Correct:
    """Score every exit of `model` on the clean images in one pass per batch."""
    model.eval()
    out = []
    n_forward = 0
    start = time.perf_counter()
    batches = iter_batches(images, indices, batch_size, workers)
    total = -(-len(indices) // batch_size)
    with torch.inference_mode():
        for _, imgs, labels in tqdm(batches, total=total, desc=desc or "clean", leave=False, unit="batch",
                                    disable=None if desc else True):
            logits = model.exits(to_unit(imgs, device)).logits
            _check_logits(logits, len(labels))
            out.append((logits.argmax(-1).cpu() == torch.from_numpy(labels)[None]).numpy())
            n_forward += len(labels)
    seconds = time.perf_counter() - start
    return Correct(index=indices, correct=np.concatenate(out, axis=1), seconds=seconds, n_forward=n_forward)


def _check_logits(logits: object, n: int) -> None:
    if not isinstance(logits, torch.Tensor) or logits.ndim != 3 or logits.shape[1] != n:
        shape = tuple(logits.shape) if isinstance(logits, torch.Tensor) else type(logits).__name__
        raise BenchError(f"model returned {shape}; expected per-exit logits (E, {n}, K)")


def evaluate(model: torch.nn.Module, images: ImageSet, indices: np.ndarray, cond: Condition, *,
             batch_size: int, device: torch.device, workers: int = 0, desc: str = "") -> Correct:
    """Per-image correctness of every exit under one condition."""
    if cond.kind == "clean":
        return clean_correct(model, images, indices, batch_size=batch_size, device=device,
                             workers=workers, desc=desc)
    raise BenchError(f"condition kind {cond.kind!r} is not supported by this version of the harness")
