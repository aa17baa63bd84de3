"""Latency and throughput of one exit on the run's device, measured as a deployment sees them."""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass

import torch

from bench.fast.precision import autocast

MAX_BATCH = 256


@dataclass(frozen=True, slots=True)
class Speed:
    """Median batch-1 latency (ms) and best throughput (images/s) over batch sizes 1, 2, 4, ..."""

    latency_ms: float
    throughput: float
    batch: int  # the batch size that reached `throughput`


def _timer(device: torch.device) -> Callable[[], float]:
    if device.type == "cuda":

        def now() -> float:
            torch.cuda.synchronize(device)
            return time.perf_counter()

        return now
    return time.perf_counter


def _seconds_per_call(
    fn: Callable[[], object], now: Callable[[], float], budget: float, min_calls: int = 3
) -> float:
    """Median wall time of `fn` (after a warm-up) over at least `budget` seconds and `min_calls`."""
    fn()
    times: list[float] = []
    end = time.perf_counter() + budget
    while len(times) < min_calls or time.perf_counter() < end:
        t0 = now()
        fn()
        times.append(now() - t0)
        if len(times) >= 200:
            break
    return statistics.median(times)


def measure(
    model: torch.nn.Module,
    input_size: int,
    device: torch.device,
    budget: float = 1.0,
    max_batch: int = MAX_BATCH,
    precision: str = "fp32",
) -> Speed:
    """Time `model` (one exit's view, eval mode) on random [0,1] images within about `budget`
    seconds.

    A quarter of the budget goes to batch-1 latency, then batch sizes double (an eighth each) until
    the budget is spent, two sizes in a row bring no gain, a single batch outlasts its share, or
    memory runs out.
    """
    now = _timer(device)
    gen = torch.Generator().manual_seed(0)
    model.eval()
    start = time.perf_counter()

    def at(batch: int, share: float) -> float:
        # NCHW, as to_unit gives
        x = torch.rand(batch, 3, input_size, input_size, generator=gen).to(device)
        with torch.inference_mode(), autocast(precision, device):
            return _seconds_per_call(lambda: model(x), now, share)

    latency = at(1, budget / 4)
    best, best_batch, batch, drops = 1 / latency, 1, 2, 0
    while batch <= max_batch and time.perf_counter() - start < budget:
        try:
            s = at(batch, budget / 8)
        except torch.OutOfMemoryError:
            torch.cuda.empty_cache()
            break
        if batch / s > best:
            best, best_batch, drops = batch / s, batch, 0
        else:
            drops += 1  # one slower size can be noise; two in a row end the search
            if drops == 2:
                break
        if s > budget / 8:
            break
        batch *= 2
    return Speed(latency_ms=1000 * latency, throughput=best, batch=best_batch)
