"""Runs under torchrun: ranks share a cell's images, gather per-image correctness, and rank 0
writes.

Without torchrun (no WORLD_SIZE in the environment) everything is one process and nothing here does
any communication. Images are split so that every image is evaluated exactly as in a single process:
per-image seeds for FGSM/PGD, and whole AutoAttack chunks (seeded per chunk) per rank, so the
gathered results and the CSV are the same as a single-process run.
"""

from __future__ import annotations

import atexit
import functools
import os
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, TypeVar

import numpy as np
import torch

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class World:
    """This process's place among the ranks of a torchrun launch (rank 0 of 1 without one)."""

    rank: int = 0
    size: int = 1
    local_rank: int = 0

    @property
    def main(self) -> bool:
        return self.rank == 0


# Rank 0 works alone while the others wait in a barrier (rendering reference corruptions, model
# checks, the evaluation after training), which can outlast the backends' defaults (NCCL: 10
# minutes).
TIMEOUT = timedelta(hours=2)


@functools.cache
def world() -> World:
    """Join the process group torchrun describes in the environment: gloo for CPU tensors (and for
    the object collectives and barriers), NCCL for CUDA tensors where there are GPUs, so `--device
    cpu` works on a GPU host."""
    size = int(os.environ.get("WORLD_SIZE", "1"))
    if size == 1:
        return World()
    import torch.distributed as dist

    local = int(os.environ.get("LOCAL_RANK", "0"))
    if not dist.is_initialized():
        cuda = torch.cuda.is_available()
        if cuda and local < torch.cuda.device_count():
            torch.cuda.set_device(local)
        dist.init_process_group("cpu:gloo,cuda:nccl" if cuda else "gloo", timeout=TIMEOUT)
        # left to interpreter shutdown, gloo's worker threads can abort the process (SIGABRT,
        # "terminate called without an active exception"): pytorch/pytorch#190489
        atexit.register(_leave)
    return World(rank=dist.get_rank(), size=dist.get_world_size(), local_rank=local)


def _leave() -> None:
    """Destroy the process group while the interpreter is still whole."""
    import torch.distributed as dist

    if dist.is_initialized():
        dist.destroy_process_group()


def barrier() -> None:
    """Wait for every rank (no-op in a single process)."""
    if world().size > 1:
        import torch.distributed as dist

        dist.barrier()


def all_ok(ok: bool) -> bool:
    """Whether `ok` holds on every rank; all ranks get the same answer, so all can stop together."""
    if world().size == 1:
        return ok
    import torch.distributed as dist

    # a CPU tensor: the gloo side of the group
    flag = torch.tensor([1 if ok else 0], dtype=torch.int32)
    dist.all_reduce(flag, op=dist.ReduceOp.MIN)
    return bool(flag.item())


def together(fn: Callable[[], T]) -> T:
    """fn() on every rank, the process group joined first; when it fails on some rank, every rank
    fails with it (the failing rank with its own error, the others with a BenchError naming it), so
    none waits at a later barrier."""
    w = world()
    if w.size == 1:
        return fn()
    from bench.core.errors import BenchError, first_line

    try:
        out, failed = fn(), ""
    except BaseException as e:  # noqa: BLE001  (re-raised below, once the other ranks know; SystemExit too)
        out, failed, mine = None, first_line(e) or type(e).__name__, e
    told = next(((r, m) for r, m in enumerate(gather(failed)) if m), None)
    if failed:
        raise mine
    if told is not None:
        raise BenchError(f"rank {told[0]} failed: {told[1]}")
    return out  # type: ignore[return-value]


def on_main(fn: Callable[[], T]) -> T | None:
    """fn() on rank 0 while the others wait (None there); an error on rank 0 stops every rank."""
    return together(lambda: fn() if world().main else None)


def gather(obj: Any) -> list[Any]:
    """Every rank's `obj`, in rank order, on every rank."""
    w = world()
    if w.size == 1:
        return [obj]
    import torch.distributed as dist

    out: list[Any] = [None] * w.size
    dist.all_gather_object(out, obj)
    return out


def shard(n: int, chunk: int) -> tuple[np.ndarray, list[int]]:
    """Positions 0..n-1 this rank evaluates, in whole chunks of `chunk` (every size-th chunk), with
    the chunks' numbers: batched by `chunk`, they are the very batches one process forms, so kernels
    chosen by batch shape (oneDNN, cuDNN) round every image alike under any number of ranks."""
    w = world()
    ids = list(range(w.rank, -(-n // chunk), w.size))
    pos = [np.arange(c * chunk, min((c + 1) * chunk, n)) for c in ids]
    return (np.concatenate(pos) if pos else np.zeros(0, dtype=np.int64)), ids
