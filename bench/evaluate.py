"""Where a model meets a condition: images in, per-image correctness per exit out."""
from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping, Sequence

import numpy as np
import torch
from tqdm import tqdm

from bench.accel import autocast
from bench.conditions import Condition
from bench.data import ImageSet, iter_batches, to_unit
from bench.errors import BenchError
from bench.results import canonical_json
from bench.seeds import image_seeds


@dataclass(frozen=True)
class Correct:
    """Per-image correctness: index (N,), correct (E,N) bool; plus the passes and time it cost."""

    index: np.ndarray
    correct: np.ndarray
    seconds: float
    n_forward: np.ndarray  # (E,) images forward through the model that produced each exit's row
    n_backward: np.ndarray  # (E,)
    notes: tuple[tuple[int, str], ...] = ()  # (exit, message) raised by the attack library's own checks
    # (E,) each exit's share of `seconds` where exits are attacked one by one; None where one pass serves all
    exit_seconds: np.ndarray | None = None
    # AutoAttack: (exit, attack, images still robust after it) on these images, for the Square check over a cell
    robust_after: tuple[tuple[int, str, int], ...] = ()

    def seconds_of(self, t: int, n_rows: int) -> float:
        """Seconds to put on exit t's row: its own share when measured, else an even split over the cell's rows."""
        return float(self.exit_seconds[t - 1]) if self.exit_seconds is not None else self.seconds / n_rows


def _shares(per_exit: np.ndarray, total: float) -> np.ndarray:
    """Per-exit times scaled to sum to the cell's wall time (loading and scoring split in proportion)."""
    measured = float(per_exit.sum())
    return per_exit * (total / measured) if measured > 0 else per_exit


def merge(parts: Sequence[tuple[np.ndarray, "Correct | None"]], indices: np.ndarray, n_exits: int) -> Correct:
    """One cell's Correct from the ranks' shares: (positions in `indices`, that share's result)."""
    correct = np.zeros((n_exits, len(indices)), dtype=bool)
    n_fwd, n_bwd = np.zeros(n_exits, dtype=np.int64), np.zeros(n_exits, dtype=np.int64)
    seconds, notes = 0.0, []
    exit_seconds: np.ndarray | None = None
    robust_after: dict[tuple[int, str], int] = {}
    for pos, part in parts:
        if part is None:
            continue
        correct[:, pos] = part.correct
        n_fwd += part.n_forward
        n_bwd += part.n_backward
        seconds = max(seconds, part.seconds)  # ranks run side by side: the cell took the slowest one's time
        notes += [n for n in part.notes if n not in notes]
        for t, name, k in part.robust_after:
            robust_after[t, name] = robust_after.get((t, name), 0) + k
        if part.exit_seconds is not None:
            exit_seconds = part.exit_seconds if exit_seconds is None else np.maximum(exit_seconds, part.exit_seconds)
    if exit_seconds is not None:
        exit_seconds = _shares(exit_seconds, seconds)
    if robust_after:  # AutoAttack's Square check, on the whole cell's counts as one process would take them
        from attacks.autoattack import square_flags

        for t in sorted({t for t, _ in robust_after}):
            counts = {name: k for (e, name), k in robust_after.items() if e == t}
            notes += [(t, m) for m in dict.fromkeys(square_flags(counts, len(indices))) if (t, m) not in notes]
    return Correct(indices, correct, seconds, n_fwd, n_bwd, tuple(notes), exit_seconds,
                   tuple((t, name, k) for (t, name), k in robust_after.items()))


def _bar(batches, total: int, desc: str):  # type: ignore[no-untyped-def]
    return tqdm(batches, total=total, desc=desc or "eval", leave=False, unit="batch",
                disable=None if desc else True)


def _check_logits(logits: object, n: int) -> None:
    if not isinstance(logits, torch.Tensor) or logits.ndim != 3 or logits.shape[1] != n:
        shape = tuple(logits.shape) if isinstance(logits, torch.Tensor) else type(logits).__name__
        raise BenchError(f"model returned {shape}; expected per-exit logits (E, {n}, K)")


def _exit_hits(model: torch.nn.Module, x: torch.Tensor, labels: np.ndarray, precision: str = "fp32") -> np.ndarray:
    with torch.inference_mode(), autocast(precision, x.device):
        logits = model.exits(x).logits
    _check_logits(logits, len(labels))
    return (logits.argmax(-1).cpu() == torch.from_numpy(labels)[None]).numpy()


def clean_correct(model: torch.nn.Module, images: ImageSet, indices: np.ndarray, *, batch_size: int,
                  device: torch.device, workers: int = 0, desc: str = "", precision: str = "fp32") -> Correct:
    """Score every exit of `model` on the clean images in one pass per batch (bf16 autocast for "bf16")."""
    model.eval()
    start = time.perf_counter()
    batches = iter_batches(images, indices, batch_size, workers)
    out = [_exit_hits(model, to_unit(imgs, device), labels, precision)
           for _, imgs, labels in _bar(batches, -(-len(indices) // batch_size), desc)]
    e = model.n_exits
    return Correct(indices, np.concatenate(out, axis=1), time.perf_counter() - start,
                   np.full(e, len(indices)), np.zeros(e, dtype=np.int64))


def attack_correct(model: torch.nn.Module, images: ImageSet, indices: np.ndarray, cond: Condition, *,
                   seed: int, batch_size: int, device: torch.device, workers: int = 0, desc: str = "",
                   sources: Mapping[str, torch.nn.Module] | None = None, state: Path | None = None,
                   exits: Sequence[int] | None = None, chunk_ids: Sequence[int] | None = None) -> Correct:
    """Per-exit robust correctness under one attack condition (rows of exits not attacked stay False).

    strict: every exit is attacked through its own truncated model with the true gradient, on the images it
    classifies right (a misclassified image is not robust: the ε-ball holds the clean image);
    paper: one attack on the last exit (rescaler active, normalized space) scores every exit, on x_adv alone as
    the official code does;
    transfer: examples crafted on another model of the run score every exit of this one (robust: right on both).
    """
    import attacks
    from attacks.autoattack import Flags
    from models.base import true_gradient

    atk = attacks.build(cond)
    e = model.n_exits
    wanted = list(exits or range(1, e + 1))
    correct = np.zeros((e, len(indices)), dtype=bool)
    n_fwd, n_bwd = np.zeros(e, dtype=np.int64), np.zeros(e, dtype=np.int64)
    per_exit = np.zeros(e)  # seconds of each exit's own attacks (strict white-box cells)
    tag = _seed_tag(cond)
    start = time.perf_counter()
    if isinstance(atk, attacks.AutoAttack):
        batches = list(iter_batches(images, indices, batch_size, workers))
        x = torch.cat([to_unit(b, device) for _, b, _ in batches])
        y = torch.from_numpy(np.concatenate([lab for _, _, lab in batches])).to(device)
        chunk = json.loads(cond.params).get("batch_size", batch_size)
        notes: list[tuple[int, str]] = []
        after: list[tuple[int, str, int]] = []
        resumed = 0.0
        for t in wanted:
            t0 = time.perf_counter()
            counter = attacks.PassCounter(attacks.LogitsGuard(model.at_exit(t)))
            flags = Flags()
            with true_gradient(model), attacks.attack_mode(model):
                robust = atk.robust(counter, x, y, seed=seed, batch_size=chunk, flags=flags,
                                    state=None if state is None else state.with_name(f"{state.name}-exit{t}.json"),
                                    chunk_ids=chunk_ids)
            correct[t - 1] = robust.numpy()
            n_fwd[t - 1], n_bwd[t - 1] = counter.n_forward, counter.n_backward  # a resumed state's passes included
            notes += [(t, m) for m in dict.fromkeys(flags.messages)]
            after += [(t, name, k) for name, k in flags.robust_after.items()]
            per_exit[t - 1] += time.perf_counter() - t0 + flags.resumed_seconds
            resumed += flags.resumed_seconds
        total = time.perf_counter() - start + resumed
        return Correct(indices, correct, total, n_fwd, n_bwd, tuple(notes), _shares(per_exit, total), tuple(after))
    if cond.name == "transfer_pgd":
        src_name = json.loads(cond.params)["from"]
        if not sources or src_name not in sources:
            raise BenchError(f"transfer attack needs source model {src_name!r} in the run")
        source = sources[src_name].to(device)
    pos = 0
    for idx, imgs, labels in _bar(iter_batches(images, indices, batch_size, workers),
                                  -(-len(indices) // batch_size), desc):
        x, y = to_unit(imgs, device), torch.from_numpy(labels).to(device)
        sl = slice(pos, pos + len(idx))
        pos += len(idx)
        if cond.protocol == "paper":
            counter = attacks.PassCounter(attacks.LogitsGuard(model))
            with attacks.attack_mode(model):  # the rescaler stays active, as in the official code
                x_adv = atk.with_space(model)(counter, x, y, seeds=_seeds(seed, idx, tag, 0))
                correct[:, sl] = _exit_hits(model, x_adv, labels)  # as the official code scores it
            n_fwd += counter.n_forward + len(idx)  # the scoring pass, shared by every exit
            n_bwd += counter.n_backward
        elif cond.name == "transfer_pgd":
            counter = attacks.PassCounter(attacks.LogitsGuard(source))
            with true_gradient(source), attacks.attack_mode(source):
                x_adv = atk(counter, x, y, seeds=_seeds(seed, idx, tag, 0))
            with attacks.attack_mode(model):  # robust: right on the clean image and on the transferred one
                correct[:, sl] = _exit_hits(model, x, labels) & _exit_hits(model, x_adv, labels)
            n_fwd += counter.n_forward + 2 * len(idx)
            n_bwd += counter.n_backward
        else:
            for t in wanted:
                t0 = time.perf_counter()
                view = model.at_exit(t)
                counter = attacks.PassCounter(attacks.LogitsGuard(view))
                with true_gradient(model), attacks.attack_mode(model):
                    with torch.inference_mode():
                        hit = view(x).argmax(1) == y
                    todo = hit.nonzero().squeeze(1)  # a misclassified image is not robust: nothing to attack
                    if len(todo):
                        x_adv = atk(counter, x[todo], y[todo], seeds=_seeds(seed, idx[todo.cpu().numpy()], tag, t))
                        with torch.inference_mode():
                            hit[todo] = view(x_adv).argmax(1) == y[todo]
                correct[t - 1, sl] = hit.cpu().numpy()
                n_fwd[t - 1] += counter.n_forward + len(idx) + len(todo)
                n_bwd[t - 1] += counter.n_backward
                per_exit[t - 1] += time.perf_counter() - t0  # the .cpu() above waited for the device
    total = time.perf_counter() - start
    one_attack_for_all = cond.protocol == "paper" or cond.name == "transfer_pgd"
    return Correct(indices, correct, total, n_fwd, n_bwd,
                   exit_seconds=None if one_attack_for_all else _shares(per_exit, total))


def _seed_tag(cond: Condition) -> str:
    """What an attack's random starts depend on besides the run seed, image and exit: the attack, not whose weights
    it runs on (a transfer source's weights no more than the target's, so equal tensors in two checkpoint files give
    equal rows)."""
    params = json.loads(cond.params)
    kept = cond.params if "from_weights" not in params else canonical_json(
        {k: v for k, v in params.items() if k != "from_weights"})
    return f"{cond.name}|{cond.norm}|{cond.epsilon!r}|{kept}"


def _seeds(seed: int, idx: np.ndarray, tag: str, exit_: int) -> torch.Tensor:
    return torch.from_numpy(image_seeds(seed, idx, tag, exit_))


def evaluate(model: torch.nn.Module, images: ImageSet, indices: np.ndarray, cond: Condition, *,
             seed: int, batch_size: int, device: torch.device, workers: int = 0, desc: str = "",
             sources: Mapping[str, torch.nn.Module] | None = None, state: Path | None = None,
             exits: Sequence[int] | None = None, chunk_ids: Sequence[int] | None = None,
             precision: str = "fp32") -> Correct:
    """Per-image correctness of every exit (or of `exits`, for white-box attacks) under one condition.

    `chunk_ids`: the cell-wide numbers of the chunks `indices` is made of (AutoAttack seeds each chunk by its number).
    `precision`: "bf16" runs clean and corruption cells under autocast; attacks always run in fp32.
    """
    if cond.kind in ("clean", "corruption"):  # corruption cells get images already corrupted
        return clean_correct(model, images, indices, batch_size=batch_size, device=device,
                             workers=workers, desc=desc, precision=precision)
    if cond.kind == "attack":
        return attack_correct(model, images, indices, cond, seed=seed, batch_size=batch_size, device=device,
                              workers=workers, desc=desc, sources=sources, state=state, exits=exits,
                              chunk_ids=chunk_ids)
    raise BenchError(f"unknown condition kind {cond.kind!r}")
