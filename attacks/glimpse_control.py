"""Steering a model's glimpse samplers during an attack, restored after (models/sampler.py)."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

from torch import Tensor, nn

from bench.models.sampler import GlimpseSampler, Route


def samplers(model: nn.Module) -> list[GlimpseSampler]:
    """The glimpse samplers a model declares, in module order (none: adaptive attacks skip it)."""
    return [m for m in model.modules() if isinstance(m, GlimpseSampler)]


@contextlib.contextmanager
def steer(
    model: nn.Module, route: Route = "own", offsets: Tensor | None = None, record: bool = False
) -> Iterator[list[Tensor]]:
    """Route every sampler, offset its glimpses, and yield the affines it is asked for (when
    `record`); every sampler's state is restored after, even on error."""
    found = samplers(model)
    before = [(s.route, s.offsets, s.seen, s.calls) for s in found]
    seen: list[Tensor] = []
    for s in found:
        s.route = route
        s.set_offsets(offsets)
        s.seen = seen if record else None
    try:
        yield seen
    finally:
        for s, (r, o, w, c) in zip(found, before):
            s.route, s.offsets, s.seen, s.calls = r, o, w, c
