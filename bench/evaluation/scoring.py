"""Where a model meets a condition: images in, per-image correctness per exit out.

A condition's scorer comes from one table keyed by (kind, protocol, attack mode):
- clean and corruption images: one pass per batch scores every exit;
- strict white-box attacks: every exit is attacked through its own truncated model with the true
  gradient, on the images it classifies right (a misclassified image is not robust: the ε-ball holds
  the clean image);
- strict transfer: examples crafted on another model of the run score every exit of this one
  (robust: right on both);
- strict cascade (AutoAttack): per-image robust flags of each exit, resumable per chunk;
- paper: one attack on the last exit (rescaler active, normalized space) scores every exit, on
  x_adv alone as the official code does.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from bench.core.conditions import Condition
from bench.core.errors import BenchError
from bench.core.seeds import image_seeds
from bench.data import ImageSet, iter_batches, to_unit
from bench.evaluation.confidence import exit_confidence
from bench.evaluation.correct import Correct, Tally, shares, tally
from bench.fast import cpu_kernels
from bench.fast.precision import autocast
from bench.models.base import predictions, true_gradient


@dataclass(frozen=True, kw_only=True)
class Job:
    """One model under one condition on some of a cell's images: everything a scorer reads.

    `chunk_ids`: the cell-wide numbers of the chunks `indices` is made of (AutoAttack seeds each
    chunk by its number). `precision`: "bf16" runs clean and corruption cells under autocast;
    attacks always run in fp32.
    """

    model: torch.nn.Module
    images: ImageSet
    indices: np.ndarray
    cond: Condition
    seed: int
    batch_size: int
    device: torch.device
    workers: int = 0
    desc: str = ""
    sources: Mapping[str, torch.nn.Module] | None = None
    state: Path | None = None
    exits: Sequence[int] | None = None
    chunk_ids: Sequence[int] | None = None
    precision: str = "fp32"

    def batches(self) -> Iterator[tuple[np.ndarray, np.ndarray, np.ndarray]]:
        """(indices, uint8 images, labels) per batch, with a progress bar if `desc` asks for one."""
        batches = iter_batches(self.images, self.indices, self.batch_size, self.workers)
        return _bar(batches, -(-len(self.indices) // self.batch_size), self.desc)

    def wanted(self) -> list[int]:
        """The exits to attack (white-box attacks attack each exit on its own)."""
        return list(self.exits or range(1, self.model.n_exits + 1))


def _bar(batches: Iterable, total: int, desc: str) -> tqdm:  # type: ignore[type-arg]
    return tqdm(
        batches,
        total=total,
        desc=desc or "eval",
        leave=False,
        unit="batch",
        disable=None if desc else True,
    )


def _check_logits(logits: object, n: int) -> None:
    if not isinstance(logits, torch.Tensor) or logits.ndim != 3 or logits.shape[1] != n:
        shape = tuple(logits.shape) if isinstance(logits, torch.Tensor) else type(logits).__name__
        raise BenchError(f"model returned {shape}; expected per-exit logits (E, {n}, K)")


def exit_logits(
    model: torch.nn.Module, x: torch.Tensor, n: int, precision: str = "fp32"
) -> torch.Tensor:
    """(E, N, K) logits of every exit from one pass, checked for shape."""
    with torch.inference_mode(), autocast(precision, x.device):
        logits = model.exits(x).logits
    _check_logits(logits, n)
    return logits


def hits_of(logits: torch.Tensor, labels: np.ndarray) -> np.ndarray:
    """(E, N) bool: whether each exit's logits classify each image right."""
    return (predictions(logits).cpu() == torch.from_numpy(labels)[None]).numpy()


def exit_hits(
    model: torch.nn.Module, x: torch.Tensor, labels: np.ndarray, precision: str = "fp32"
) -> np.ndarray:
    """(E, N) bool: whether each exit classifies each image right."""
    return hits_of(exit_logits(model, x, len(labels), precision), labels)


def score_images(job: Job) -> Correct:
    """Every exit on the images as they are (clean or already corrupted), one pass per batch; a
    multi-exit model's per-exit confidences too, for early-exit policies."""
    model, e = job.model.eval(), job.model.n_exits
    start = time.perf_counter()
    hits, conf = [], []
    for _, imgs, labels in job.batches():
        logits = exit_logits(model, to_unit(imgs, job.device), len(labels), job.precision)
        hits.append(hits_of(logits, labels))
        if e > 1:
            conf.append(exit_confidence(logits))
    return Correct(
        job.indices,
        np.concatenate(hits, axis=1),
        time.perf_counter() - start,
        np.full(e, len(job.indices)),
        np.zeros(e, dtype=np.int64),
        confidence=np.concatenate(conf, axis=2) if conf else None,
    )


def clean_correct(
    model: torch.nn.Module,
    images: ImageSet,
    indices: np.ndarray,
    *,
    batch_size: int,
    device: torch.device,
    workers: int = 0,
    desc: str = "",
    precision: str = "fp32",
) -> Correct:
    """Score each exit of `model` on clean images, one pass per batch (bf16 autocast for "bf16")."""
    from bench.core.conditions import CLEAN

    return score_images(
        Job(
            model=model,
            images=images,
            indices=indices,
            cond=CLEAN,
            seed=0,
            batch_size=batch_size,
            device=device,
            workers=workers,
            desc=desc,
            precision=precision,
        )
    )


def _seed_tag(cond: Condition) -> str:
    """What an attack's random starts depend on besides the run seed, image and exit: the attack,
    not whose weights it runs on (a transfer source's weights no more than the target's, so equal
    tensors in two checkpoint files give equal rows)."""
    return f"{cond.name}|{cond.norm}|{cond.epsilon!r}|{cond.params.without('from_weights').json()}"


def _seeds(seed: int, idx: np.ndarray, tag: str, exit_: int) -> torch.Tensor:
    return torch.from_numpy(image_seeds(seed, idx, tag, exit_))


def _attack_exit(
    job: Job, atk: Callable, x: torch.Tensor, y: torch.Tensor, idx: np.ndarray, t: int
) -> tuple[np.ndarray, int, int, dict[str, tuple[int, int]]]:
    """Exit t attacked via its view on images it gets right: (robust, forward and backward passes,
    the attack-failure counts of its trace)."""
    from bench import attacks
    from bench.attacks.trace import Trace, failure_counts, traces

    view = job.model.at_exit(t)
    counter = attacks.PassCounter(attacks.LogitsGuard(view))
    trace = Trace() if traces(atk) else None
    with true_gradient(job.model), attacks.attack_mode(job.model):
        with torch.inference_mode():
            hit = predictions(view(x)) == y
        todo = hit.nonzero().squeeze(1)  # a misclassified image is not robust: nothing to attack
        if len(todo):
            seeds = _seeds(job.seed, idx[todo.cpu().numpy()], _seed_tag(job.cond), t)
            kw = {} if trace is None else {"trace": trace}
            x_adv = atk(counter, x[todo], y[todo], seeds=seeds, **kw)
            with torch.inference_mode():
                hit[todo] = predictions(view(x_adv)) == y[todo]
    found = failure_counts(trace, hit[todo].cpu()) if trace is not None and len(todo) else {}
    return hit.cpu().numpy(), counter.n_forward + len(idx) + len(todo), counter.n_backward, found


def score_white_box(job: Job) -> Correct:
    """Strict white-box: each wanted exit attacked and timed alone (others' rows stay False)."""
    from bench import attacks

    atk, e, wanted = attacks.build(job.cond), job.model.n_exits, job.wanted()
    correct = np.zeros((e, len(job.indices)), dtype=bool)
    n_fwd, n_bwd, per_exit = np.zeros(e, dtype=np.int64), np.zeros(e, dtype=np.int64), np.zeros(e)
    start, pos = time.perf_counter(), 0
    found: Tally = {}
    for idx, imgs, labels in job.batches():
        x, y = to_unit(imgs, job.device), torch.from_numpy(labels).to(job.device)
        sl = slice(pos, pos + len(idx))
        pos += len(idx)
        for t in wanted:
            t0 = time.perf_counter()
            correct[t - 1, sl], fwd, bwd, counts = _attack_exit(job, atk, x, y, idx, t)
            n_fwd[t - 1] += fwd
            n_bwd[t - 1] += bwd
            per_exit[t - 1] += time.perf_counter() - t0  # the .cpu() above waited for the device
            for check, (k, n) in counts.items():
                tally(found, t, check, k, n)
    total = time.perf_counter() - start
    return Correct(
        job.indices,
        correct,
        total,
        n_fwd,
        n_bwd,
        exit_seconds=shares(per_exit, total),
        indicators=tuple((t, c, k, n) for (t, c), (k, n) in sorted(found.items())),
    )


# (E, n) correctness of a batch, its forward and backward passes, and the per-exit confidences
# (2, E, n) of the images scored where the scorer keeps them
Hits = tuple[np.ndarray, int, int, np.ndarray | None]


def _one_attack_for_all(job: Job, score_batch: Callable[..., Hits]) -> Correct:
    """Scorers where one attack serves every exit: `score_batch(x, y, idx, labels)` per batch."""
    e = job.model.n_exits
    correct = np.zeros((e, len(job.indices)), dtype=bool)
    n_fwd, n_bwd = np.zeros(e, dtype=np.int64), np.zeros(e, dtype=np.int64)
    start, pos, conf = time.perf_counter(), 0, []
    for idx, imgs, labels in job.batches():
        x, y = to_unit(imgs, job.device), torch.from_numpy(labels).to(job.device)
        correct[:, pos : pos + len(idx)], fwd, bwd, c = score_batch(x, y, idx, labels)
        pos += len(idx)
        n_fwd += fwd
        n_bwd += bwd
        conf += [] if c is None else [c]
    confidence = np.concatenate(conf, axis=2) if conf else None
    return Correct(
        job.indices, correct, time.perf_counter() - start, n_fwd, n_bwd, confidence=confidence
    )


def score_paper(job: Job) -> Correct:
    """The official protocol: one attack on the last exit (rescaler on) scores every exit."""
    from bench import attacks

    atk, model, tag = attacks.build(job.cond), job.model, _seed_tag(job.cond)

    def score_batch(x: torch.Tensor, y: torch.Tensor, idx: np.ndarray, labels: np.ndarray) -> Hits:
        counter = attacks.PassCounter(attacks.LogitsGuard(model))
        with attacks.attack_mode(model):  # the rescaler stays active, as in the official code
            x_adv = atk.with_space(model)(counter, x, y, seeds=_seeds(job.seed, idx, tag, 0))
            hits = exit_hits(model, x_adv, labels)  # as the official code scores it
        # the scoring pass, shared by every exit
        return hits, counter.n_forward + len(idx), counter.n_backward, None

    return _one_attack_for_all(job, score_batch)


def score_transfer(job: Job) -> Correct:
    """Examples crafted on the source model score every exit; robust: right on clean images too."""
    from bench import attacks

    src_name = str(job.cond.params["from"])
    if not job.sources or src_name not in job.sources:
        raise BenchError(f"transfer attack needs source model {src_name!r} in the run")
    source, model = job.sources[src_name].to(job.device), job.model
    atk, tag = attacks.build(job.cond), _seed_tag(job.cond)

    def score_batch(x: torch.Tensor, y: torch.Tensor, idx: np.ndarray, labels: np.ndarray) -> Hits:
        counter = attacks.PassCounter(attacks.LogitsGuard(source))
        with true_gradient(source), attacks.attack_mode(source):
            x_adv = atk(counter, x, y, seeds=_seeds(job.seed, idx, tag, 0))
        # robust: right on the clean image and on the transferred one
        with attacks.attack_mode(model):
            hits = exit_hits(model, x, labels) & exit_hits(model, x_adv, labels)
        return hits, counter.n_forward + 2 * len(idx), counter.n_backward, None

    return _one_attack_for_all(job, score_batch)


def score_dynamic(job: Job) -> Correct:
    """Attacks on an early-exit policy: one attack on all exits at once; per exit, right on clean
    and attacked images, with the attacked images' confidences, so the report scores any τ."""
    from bench import attacks
    from bench.attacks.exit_policy import ExitStack

    atk, model, tag = attacks.build(job.cond), job.model, _seed_tag(job.cond)

    def score_batch(x: torch.Tensor, y: torch.Tensor, idx: np.ndarray, labels: np.ndarray) -> Hits:
        counter = attacks.PassCounter(ExitStack(model))
        with true_gradient(model), attacks.attack_mode(model):
            x_adv = atk(counter, x, y, seeds=_seeds(job.seed, idx, tag, 0))
            clean = hits_of(exit_logits(model, x, len(labels)), labels)
            logits = exit_logits(model, x_adv, len(labels))
        hits = clean & hits_of(logits, labels)
        return hits, counter.n_forward + 2 * len(idx), counter.n_backward, exit_confidence(logits)

    return _one_attack_for_all(job, score_batch)


def small_batch_kernels(view: torch.nn.Module, x: torch.Tensor) -> Callable:
    """The context AutoAttack enters around each chunk: PyTorch's own convolutions for the few
    images still robust on a CPU (bench/fast/cpu_kernels.py), from the model's largest convolution,
    probed on one image (the random state restored: a randomized model draws nothing for it)."""
    devices = [x.device] if x.device.type == "cuda" else []
    with torch.random.fork_rng(devices=devices), torch.no_grad(), cpu_kernels.conv_probe(view) as c:
        view(x[:1])
    convs = c
    return lambda n: cpu_kernels.small_batch(n, convs.largest, x.device)


def score_cascade(job: Job) -> Correct:
    """AutoAttack per wanted exit: per-image robust flags, resumable from the cell's state file."""
    from bench import attacks
    from bench.attacks.autoattack import Flags

    atk, model, e = attacks.build(job.cond), job.model, job.model.n_exits
    correct = np.zeros((e, len(job.indices)), dtype=bool)
    n_fwd, n_bwd, per_exit = np.zeros(e, dtype=np.int64), np.zeros(e, dtype=np.int64), np.zeros(e)
    start, resumed = time.perf_counter(), 0.0
    batches = list(iter_batches(job.images, job.indices, job.batch_size, job.workers))
    x = torch.cat([to_unit(b, job.device) for _, b, _ in batches])
    y = torch.from_numpy(np.concatenate([lab for _, _, lab in batches])).to(job.device)
    chunk = int(job.cond.params.get("batch_size", job.batch_size))
    notes: list[tuple[int, str]] = []
    after: list[tuple[int, str, int]] = []
    for t in job.wanted():
        t0 = time.perf_counter()
        view = attacks.LogitsGuard(model.at_exit(t))
        counter, flags = attacks.PassCounter(view), Flags()
        state = None if job.state is None else job.state.with_name(f"{job.state.name}-exit{t}.json")
        with true_gradient(model), attacks.attack_mode(model):
            robust = atk.robust(
                counter,
                x,
                y,
                seed=job.seed,
                batch_size=chunk,
                flags=flags,
                state=state,
                chunk_ids=job.chunk_ids,
                chunk_context=small_batch_kernels(view, x),
            )
        correct[t - 1] = robust.numpy()
        # a resumed state's passes included
        n_fwd[t - 1], n_bwd[t - 1] = (counter.n_forward, counter.n_backward)
        notes += [(t, m) for m in dict.fromkeys(flags.messages)]
        after += [(t, name, k) for name, k in flags.robust_after.items()]
        per_exit[t - 1] += time.perf_counter() - t0 + flags.resumed_seconds
        resumed += flags.resumed_seconds
    total = time.perf_counter() - start + resumed
    return Correct(
        job.indices,
        correct,
        total,
        n_fwd,
        n_bwd,
        tuple(notes),
        shares(per_exit, total),
        tuple(after),
    )


Scorer = Callable[[Job], Correct]
SCORERS: dict[tuple[str, str, str], Scorer] = {
    ("clean", "", ""): score_images,
    ("corruption", "", ""): score_images,  # a corruption cell's images come corrupted
    ("attack", "strict", "white_box"): score_white_box,
    ("attack", "strict", "transfer"): score_transfer,
    ("attack", "strict", "cascade"): score_cascade,
    ("attack", "paper", "white_box"): score_paper,
    ("attack", "strict", "dynamic"): score_dynamic,
}


def scorer(cond: Condition) -> Scorer:
    """The scorer of a condition, by its kind, protocol and (for attacks) the attack's mode."""
    from bench import attacks

    mode = attacks.mode(cond)
    try:
        return SCORERS[cond.kind, cond.protocol, mode]
    except KeyError:
        raise BenchError(
            f"{cond.label()}: no scoring for a {mode or cond.kind} condition under protocol "
            f"{cond.protocol or 'none'}"
        ) from None


def evaluate(
    model: torch.nn.Module, images: ImageSet, indices: np.ndarray, cond: Condition, **job: object
) -> Correct:
    """Per-image correctness of every exit (or of `exits`, for white-box attacks) under one
    condition; `job` holds the other fields of Job (seed, batch_size, device, ...)."""
    return scorer(cond)(Job(model=model, images=images, indices=indices, cond=cond, **job))  # type: ignore[arg-type]
