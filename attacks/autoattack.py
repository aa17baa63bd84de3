"""AutoAttack (Croce & Hein, ICML 2020) through `pyautoattack` 0.2.0, with the project's own resume.

pyautoattack's state file cannot be reloaded as shipped, so the cascade is driven here with the
library's configured attack objects (APGD-CE, APGD-T, FAB-T, Square for `standard`; APGD-CE,
APGD-DLR with 20-sample EOT for `rand`): each attack runs only on images still robust, over fixed
chunks of `batch_size` images in subset order, seeded per (seed, chunk, attack). Per-image robust
flags and finished chunks are written to a JSON state file after every chunk, so a killed run
continues where it stopped and gives the same flags as an uninterrupted one. The number of target
classes is min(9, K − 1): it never grows with K and works below 10 classes.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import torch
from torch import Tensor, nn

from bench.attacks.base import PassCounter, check_args, check_in_threat_model
from bench.core.seeds import image_seed
from bench.models.base import predictions

STANDARD = ("apgd-ce", "apgd-t", "fab-t", "square")
RAND = ("apgd-ce", "apgd-dlr")


@dataclass
class Flags:
    """AutoAttack's checks, and how many images were still robust after each attack of the cascade.

    The checks are kept as raised (pyautoattack logs them as warnings); the counts serve the Square
    check over a whole cell's shares.
    """

    messages: list[str] = field(default_factory=list)
    robust_after: dict[str, int] = field(default_factory=dict)
    # the time an interrupted run spent on this cell before the state was saved
    resumed_seconds: float = 0.0


def square_flags(robust_after: dict[str, int], n: int) -> list[str]:
    """pyautoattack's Square check over a cell: did Square break images white-box attacks left?"""
    from pyautoattack import checks

    flags = Flags()
    log = logging.getLogger("auto-attack")
    handler = _Capture(flags)
    log.addHandler(handler)
    try:
        checks.check_square_sr({k: v / n for k, v in robust_after.items()}, logger=log)
    finally:
        log.removeHandler(handler)
    return flags.messages


class _Capture(logging.Handler):
    def __init__(self, flags: Flags) -> None:
        super().__init__(logging.WARNING)
        self.flags = flags

    def emit(self, record: logging.LogRecord) -> None:
        self.flags.messages.append(record.getMessage())


@dataclass(frozen=True, slots=True)
class AutoAttack:
    """AutoAttack `standard` or `rand` at one ε."""

    eps: float
    norm: Literal["linf", "l2"] = "linf"
    version: Literal["standard", "rand"] = "standard"

    def __post_init__(self) -> None:
        check_args(self.eps, self.norm)
        if self.version not in ("standard", "rand"):
            raise ValueError(f"unknown AutoAttack version {self.version!r} (standard, rand)")

    def attacks(self, n_classes: int) -> tuple[str, ...]:
        """The cascade for this class count: targeted DLR needs at least 4 classes, DLR 3; FAB-T
        targets the K-1 others, so it runs from 2."""
        names = STANDARD if self.version == "standard" else RAND
        if n_classes < 4:
            names = tuple(a for a in names if a != "apgd-t")
        if n_classes < 3:
            names = tuple(a for a in names if a != "apgd-dlr")
        return names

    def _objects(self, model: nn.Module, n_classes: int, device: torch.device):  # type: ignore[no-untyped-def]
        from pyautoattack import AutoAttack as PyAA

        aa = PyAA(
            model,
            eps=self.eps,
            norm="Linf" if self.norm == "linf" else "L2",
            seed=0,
            version=self.version,
            device=device,
        )
        targets = max(1, min(9, n_classes - 1))
        aa.apgd_targeted.n_target_classes = targets
        aa.fab.n_target_classes = targets
        return aa

    def robust(
        self,
        model: nn.Module,
        x: Tensor,
        y: Tensor,
        *,
        seed: int,
        batch_size: int,
        state: Path | None = None,
        flags: Flags | None = None,
        progress: Callable[[str], None] | None = None,
        chunk_ids: Sequence[int] | None = None,
        chunk_context: Callable[[int], AbstractContextManager[object]] | None = None,
    ) -> Tensor:
        """Per-image robustness (N,) bool of `model` on (x, y), resuming from `state` if it exists.

        `chunk_ids` are the cell-wide numbers of x's chunks when x is one or all of a cell's shares
        (they seed each chunk). With them, pyautoattack's input checks run only on the share holding
        chunk 0 (the images a single process checks), and the Square check is left to the caller,
        over the whole cell's `flags.robust_after`. `chunk_context(n)` is entered around each attack
        on a chunk's n images still robust: the caller's way to choose kernels for small batches
        (bench/fast/cpu_kernels.py).
        """
        x = x.contiguous()  # the library .view()s gradients shaped like x
        flags = flags if flags is not None else Flags()
        # not a pass of the attack: not counted
        probe = model.model if isinstance(model, PassCounter) else model
        with torch.no_grad():
            n_classes = probe(x[:1]).shape[1]
        cell = _Cell.resume(self, state, self.attacks(n_classes), model, len(x), flags)
        with _captured(flags) as log:
            aa = self._objects(model, n_classes, x.device)
            if cell.robust is None:
                if not chunk_ids or chunk_ids[0] == 0:
                    self._input_checks(model, x[:batch_size], y[:batch_size], log)
                cell.robust = _still_right(model, x, y, batch_size)
                cell.finish("clean")
            for name in cell.names:
                for c in range(-(-len(x) // batch_size)):
                    if c not in cell.done[name]:
                        chunk_seed = image_seed(seed, chunk_ids[c] if chunk_ids else c, name)
                        lo = c * batch_size
                        self._attack_chunk(
                            aa,
                            name,
                            model,
                            x,
                            y,
                            lo,
                            batch_size,
                            chunk_seed,
                            cell.robust,
                            chunk_context or _no_context,
                        )
                        cell.done[name].append(c)
                        cell.save()
                        if progress:
                            progress(name)
                cell.finish(name)  # a resumed state holds the counts of attacks it finished
        flags.robust_after = cell.counts
        if chunk_ids is None and len(x):
            flags.messages += square_flags(cell.counts, len(x))
        return cell.robust

    def _input_checks(self, model: nn.Module, x: Tensor, y: Tensor, log: logging.Logger) -> None:
        """pyautoattack's checks of the model on the first chunk, raised as its warnings."""
        from pyautoattack import checks

        if self.version != "rand":  # as pyautoattack: a randomized model is what "rand" is for
            checks.check_randomized(model, x, y, bs=len(x), logger=log)
        checks.check_range_output(model, x, logger=log)
        checks.check_dynamic(model, x, False, logger=log)

    def _attack_chunk(
        self,
        aa,
        name: str,
        model: nn.Module,
        x: Tensor,
        y: Tensor,
        lo: int,
        size: int,
        seed: int,
        robust: Tensor,
        context: Callable[[int], AbstractContextManager[object]],
    ) -> None:
        """One attack on the chunk's images still robust; their flags updated in place."""
        idx = lo + robust[lo : lo + size].nonzero().squeeze(1)
        if not len(idx):
            return
        with context(len(idx)):
            adv = self._run_one(aa, name, x[idx], y[idx], seed, x.device)
            check_in_threat_model(x[idx], adv, self.eps, self.norm, f"AutoAttack's {name}")
            with torch.no_grad():
                robust[idx] = predictions(model(adv)).eq(y[idx]).cpu()

    @staticmethod
    def _run_one(aa, name: str, x: Tensor, y: Tensor, seed: int, device: torch.device) -> Tensor:  # type: ignore[no-untyped-def]
        devices = [device] if device.type == "cuda" else []
        with torch.random.fork_rng(devices=devices):  # the library seeds the global RNG
            if name in ("apgd-ce", "apgd-dlr"):
                aa.apgd.loss = "ce" if name == "apgd-ce" else "dlr"
                aa.apgd.seed = seed
                return aa.apgd.perturb(x, y)
            if name == "apgd-t":
                aa.apgd_targeted.seed = seed
                return aa.apgd_targeted.perturb(x, y)
            if name == "fab-t":
                aa.fab.targeted = True
                aa.fab.n_restarts = 1
                aa.fab.seed = seed
                return aa.fab.perturb(x, y)
            aa.square.seed = seed
            return aa.square.perturb(x, y)


@contextlib.contextmanager
def _no_context(n: int) -> Iterator[None]:
    yield


@contextlib.contextmanager
def _captured(flags: Flags) -> Iterator[logging.Logger]:
    """pyautoattack's logger, its warnings collected into `flags` while the block runs."""
    log = logging.getLogger("auto-attack")
    handler = _Capture(flags)
    log.addHandler(handler)
    try:
        yield log
    finally:
        log.removeHandler(handler)


def _still_right(model: nn.Module, x: Tensor, y: Tensor, batch_size: int) -> Tensor:
    """(N,) bool: the images the model classifies right, in chunks of `batch_size`."""
    with torch.no_grad():
        return torch.cat(
            [
                predictions(model(x[s : s + batch_size])).eq(y[s : s + batch_size]).cpu()
                for s in range(0, len(x), batch_size)
            ]
        )


@dataclass
class _Cell:
    """A cell's cascade so far, saved after every chunk: robust flags, finished chunks per attack,
    robust counts after each finished attack, and the passes and seconds spent before a resume."""

    atk: AutoAttack
    state: Path | None
    names: tuple[str, ...]
    robust: Tensor | None
    done: dict[str, list[int]]
    counts: dict[str, int]
    spent: dict
    flags: Flags
    counter: PassCounter | None
    began: float = field(default_factory=time.perf_counter)

    @classmethod
    def resume(
        cls,
        atk: AutoAttack,
        state: Path | None,
        names: tuple[str, ...],
        model: nn.Module,
        n: int,
        flags: Flags,
    ) -> _Cell:
        """The saved progress of this cell, or a fresh start; a resumed cell's passes and time are
        added to the counter and the flags, so its rows count the whole attack."""
        saved = _load_state(state, names, n, atk) or {}
        flags.messages += saved.get("messages", [])  # the input checks ran before the interruption
        spent = saved.get("spent", {"n_forward": 0, "n_backward": 0, "seconds": 0.0})
        flags.resumed_seconds = float(spent["seconds"])
        counter = model if isinstance(model, PassCounter) else None
        if counter is not None:
            counter.add(spent["n_forward"], spent["n_backward"])
        robust = torch.tensor(saved["robust"], dtype=torch.bool) if saved else None
        done = saved.get("done", {a: [] for a in names})
        return cls(atk, state, names, robust, done, saved.get("counts", {}), spent, flags, counter)

    def finish(self, name: str) -> None:
        """Record the images still robust after `name` (once), and save."""
        if name not in self.counts:
            self.counts[name] = int(self.robust.sum())
            self.save()

    def save(self) -> None:
        if self.state is None:
            return
        now = {"seconds": self.flags.resumed_seconds + time.perf_counter() - self.began}
        if self.counter is not None:
            now.update(n_forward=self.counter.n_forward, n_backward=self.counter.n_backward)
        _save_state(
            self.state,
            self.atk,
            self.names,
            self.robust,
            done=self.done,
            counts=self.counts,
            messages=self.flags.messages,
            spent={**self.spent, **now},
        )


def _fingerprint(names: tuple[str, ...], n: int, atk: AutoAttack) -> dict:
    return {
        "attacks": list(names),
        "n": n,
        "eps": atk.eps,
        "norm": atk.norm,
        "version": atk.version,
    }


def _load_state(path: Path | None, names: tuple[str, ...], n: int, atk: AutoAttack) -> dict | None:
    if path is None or not path.is_file():
        return None
    try:
        data = json.loads(path.read_text())
    except ValueError:
        return None  # a torn state file: start the cell again
    if (
        data.get("fingerprint") != _fingerprint(names, n, atk)
        or not {"done", "counts", "messages", "spent"} <= data.keys()
    ):
        # another cell's, or an older format without the counts, messages or passes: start again
        return None
    data["done"] = {k: list(v) for k, v in data["done"].items()}
    return data


def _save_state(
    path: Path | None, atk: AutoAttack, names: tuple[str, ...], robust: Tensor, **parts: object
) -> None:
    """Write the cell's progress (robust flags and `parts`: attacks' finished chunks, counts,
    messages) atomically."""
    if path is None:
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(
        json.dumps(
            {
                "fingerprint": _fingerprint(names, len(robust), atk),
                "robust": robust.tolist(),
                **parts,
            }
        )
    )
    os.replace(tmp, path)
