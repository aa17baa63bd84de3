"""Training with the MGNet recipe (SGD, OneCycle) and checkpoints that say how they were made."""

from __future__ import annotations

import contextlib
import dataclasses
import math
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from dataclasses import asdict
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from bench.core.errors import BenchError, NonFiniteLogits, ensure_writable
from bench.core.recipe import Recipe
from bench.data import FolderImageSet, ImageSet, iter_batches, loader_workers, to_unit
from bench.devices import distributed
from bench.devices.device import rank_device
from bench.evaluation.scoring import clean_correct
from bench.load import checkpoint
from bench.store import data_guard
from bench.store.provenance import utc_now, versions
from bench.train import state as train_state


def _augment(
    x: torch.Tensor, gen: torch.Generator, recipe: Recipe, n_global: int, share: slice
) -> torch.Tensor:
    """Random horizontal flips for this rank's share of the global batch.

    They are drawn from the training generator for the whole global batch, so every rank draws the
    same numbers and a run is reproducible per seed.
    """
    if recipe.hflip:
        flip = (torch.rand(n_global, generator=gen) < 0.5)[share].to(x.device)
        x = torch.where(flip[:, None, None, None], x.flip(3), x)
    return x


def _stop_if_diverged(loss: torch.Tensor, name: str, epoch: int) -> None:
    """Stop every rank (none left in backward()) if any rank's loss is not finite, naming them."""
    if distributed.all_ok(bool(torch.isfinite(loss))):
        return
    losses = distributed.gather(loss.item())
    bad = ", ".join(
        f"{v}" if len(losses) == 1 else f"{v} on rank {r}"
        for r, v in enumerate(losses)
        if not math.isfinite(v)
    )
    raise BenchError(f"training {name} diverged (loss {bad}) at epoch {epoch + 1}")


class _Objective(torch.nn.Module):
    """The model's training loss as a forward pass, so DistributedDataParallel can wrap it."""

    def __init__(self, model: torch.nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return self.model.train_loss(x, y)


def _shares(train_set: ImageSet, recipe: Recipe, gen: torch.Generator) -> list[np.ndarray]:
    """This rank's share of every global batch, in the generator's order: positions rank, rank +
    size, ... of each batch."""
    w = distributed.world()
    order = torch.randperm(len(train_set), generator=gen).numpy()
    step = recipe.batch_size
    return [order[b : b + step][w.rank :: w.size] for b in range(0, len(order), step)]


def _step(
    objective: torch.nn.Module,
    name: str,
    x: torch.Tensor,
    y: torch.Tensor,
    n_global: int,
    epoch: int,
    opt: torch.optim.Optimizer,
) -> torch.Tensor:
    """One optimiser step on this rank's share of a global batch of n_global images."""
    w = distributed.world()
    try:
        loss = objective(x, y)
    except RuntimeError as e:
        if "not used in producing loss" not in str(e):
            raise
        raise BenchError(
            f"{name} has parameters its training loss does not use, which data-parallel "
            "training cannot average: freeze them (requires_grad_(False)) in the model"
        ) from None
    _stop_if_diverged(loss, name, epoch)
    opt.zero_grad(set_to_none=True)
    # DDP averages the ranks' mean losses; weigh each by its share so uneven shares count right
    (loss * (len(y) * w.size / n_global) if w.size > 1 else loss).backward()
    opt.step()
    return loss


def _epoch(
    objective: torch.nn.Module,
    model: torch.nn.Module,
    name: str,
    train_set: ImageSet,
    recipe: Recipe,
    opt: torch.optim.Optimizer,
    sched: torch.optim.lr_scheduler.LRScheduler,
    gen: torch.Generator,
    epoch: int,
    dev: torch.device,
    workers: int,
    seed: int = 0,
) -> None:
    """One training epoch in generator order; this rank takes its share of each global batch."""
    w = distributed.world()
    if isinstance(train_set, FolderImageSet):
        # random crops from (seed, epoch, image), whoever loads the image
        train_set = dataclasses.replace(train_set, draws=(seed, epoch))
    model.train()
    shares = _shares(train_set, recipe, gen)
    # a rank's share has the same size in every global batch but the last: plain batching cuts it
    batches = iter_batches(train_set, np.concatenate(shares), len(shares[0]), workers)
    desc = f"train {name} {epoch + 1}/{recipe.epochs}"
    # disable=None: bars on a terminal only, not in logs
    bar = tqdm(
        batches,
        total=len(shares),
        desc=desc,
        leave=False,
        unit="batch",
        disable=None if w.main else True,
    )
    for b, (_, images, labels) in enumerate(bar):
        n_global = min(recipe.batch_size, len(train_set) - b * recipe.batch_size)
        x = _augment(to_unit(images, dev), gen, recipe, n_global, slice(w.rank, None, w.size))
        loss = _step(objective, name, x, torch.from_numpy(labels).to(dev), n_global, epoch, opt)
        sched.step()
        bar.set_postfix(loss=f"{loss.item():.3f}")


Speedups = Callable[[torch.nn.Module, torch.device], AbstractContextManager[None]]


def _check_batches(model: torch.nn.Module, n_train: int, batch_size: int, ranks: int) -> None:
    """Refuse, on every rank alike and before any collective, a batch that leaves a rank no image,
    or one image where batch norm must train (MGNet's 1x1 maps)."""
    smallest = min(batch_size, n_train % batch_size or batch_size)
    what = f"a batch of {smallest} image(s) (batch size {batch_size}, {n_train} training images"
    if smallest < ranks:
        raise BenchError(
            f"{what}) cannot be shared among {ranks} ranks: choose a batch size that leaves every "
            "batch at least one image per rank"
        )
    has_bn = any(isinstance(m, torch.nn.modules.batchnorm._BatchNorm) for m in model.modules())
    if smallest // ranks == 1 and has_bn:
        raise BenchError(
            f"{what}{f', {ranks} ranks' if ranks > 1 else ''}) leaves a rank one image, on which "
            "batch norm cannot train (MGNet's 1x1 maps): choose another batch size"
        )


def _optimiser(
    model: torch.nn.Module, recipe: Recipe, n_train: int
) -> tuple[torch.optim.Optimizer, torch.optim.lr_scheduler.LRScheduler]:
    """SGD with momentum and weight decay, on a OneCycle schedule over every step of the recipe."""
    opt = torch.optim.SGD(
        model.parameters(), lr=recipe.lr, momentum=recipe.momentum, weight_decay=recipe.weight_decay
    )
    steps_per_epoch = -(-n_train // recipe.batch_size)
    sched = torch.optim.lr_scheduler.OneCycleLR(
        opt,
        max_lr=recipe.lr,
        pct_start=recipe.pct_start,
        total_steps=recipe.epochs * steps_per_epoch,
    )
    return opt, sched


def _wrap(model: torch.nn.Module, dev: torch.device) -> torch.nn.Module:
    """The training objective, data-parallel under torchrun."""
    objective: torch.nn.Module = _Objective(model)
    if distributed.world().size > 1:
        ids = [dev.index] if dev.type == "cuda" else None
        objective = torch.nn.parallel.DistributedDataParallel(objective, device_ids=ids)
    return objective


def _state_key(
    model: torch.nn.Module, name: str, train_set: ImageSet, recipe: Recipe, seed: int
) -> str:
    """What a stored training state must match to be resumed."""
    return train_state.fingerprint(
        model,
        model_name=name,
        data=train_set.name,
        n_train=len(train_set),
        recipe=asdict(recipe),
        seed=seed,
        world_size=distributed.world().size,
        model_config=repr(getattr(model, "cfg", None)),
    )


def _resume(
    state: Path,
    key: str,
    name: str,
    model: torch.nn.Module,
    opt: torch.optim.Optimizer,
    sched: torch.optim.lr_scheduler.LRScheduler,
    gen: torch.Generator,
) -> tuple[int, float, list[list[float]]]:
    """(epochs done, seconds spent, learning curve) of a stored state loaded into the objects, or
    (0, 0.0, []); every rank must resume from the same epoch."""
    resumed = train_state.load(state, key, model, opt, sched, gen)
    first = resumed.epoch if resumed else 0
    if len(set(distributed.gather(first))) > 1:
        raise BenchError(
            f"ranks disagree on the epoch to resume {name} from: {state} must be on a file "
            "system every rank sees"
        )
    return (first, resumed.seconds, [list(a) for a in resumed.curve]) if resumed else (0, 0.0, [])


def _test_accuracy(model: torch.nn.Module, test_set: ImageSet, dev: torch.device) -> list[float]:
    """Test accuracy of each exit after an epoch, for the learning curve; training goes on with the
    same random state and mode."""
    with torch.random.fork_rng(devices=[dev] if dev.type == "cuda" else []):
        correct = clean_correct(
            model, test_set, np.arange(len(test_set)), batch_size=256, device=dev
        )
    model.train()
    return [round(float(c.mean()), 5) for c in correct.correct]


def train(
    model: torch.nn.Module,
    name: str,
    train_set: ImageSet,
    test_set: ImageSet,
    recipe: Recipe,
    out: Path,
    *,
    seed: int = 0,
    device: str = "auto",
    workers: int | None = None,
    speedups: Speedups | None = None,
) -> Path:
    """Train `model` from its current weights and write a checkpoint with its sidecar to `out`.

    Under torchrun it is data-parallel (DDP): every rank takes its share of each global batch (the
    recipe's batch size; shares differ by at most one image), the gradient is the global batch's
    mean, and rank 0 evaluates and writes the checkpoint. `speedups(model, device)` is entered
    around the whole training (bench/fast/training.py).
    """
    w = distributed.world()
    dev = rank_device(device)
    workers = loader_workers(train_set, workers)
    _check_batches(model, len(train_set), recipe.batch_size, w.size)
    # now, not after an epoch
    ensure_writable(out.parent, f"checkpoints to {out.parent}", " (set BENCH_CACHE)")
    torch.manual_seed(seed)
    gen = torch.Generator().manual_seed(seed)
    with (speedups or _no_speedups)(model.to(dev), dev):
        model.train()
        opt, sched = _optimiser(model, recipe, len(train_set))
        state = train_state.path_for(out)
        key = _state_key(model, name, train_set, recipe, seed)
        first, spent, curve = _resume(state, key, name, model, opt, sched, gen)
        objective = _wrap(model, dev)
        start = time.perf_counter()
        for epoch in range(first, recipe.epochs):
            _epoch(
                objective,
                model,
                name,
                train_set,
                recipe,
                opt,
                sched,
                gen,
                epoch,
                dev,
                workers,
                seed,
            )
            curve.append(distributed.on_main(lambda: _test_accuracy(model, test_set, dev)))
            if w.main:
                seconds = spent + time.perf_counter() - start
                train_state.save(state, key, epoch + 1, seconds, curve, model, opt, sched, gen)
    model.eval()
    seconds = spent + time.perf_counter() - start

    def finish() -> None:
        _write(
            model,
            name,
            test_set,
            out,
            dev,
            {
                **_facts(model, train_set, test_set, recipe, seed, dev, first, seconds),
                "curve": curve,
            },
        )
        train_state.remove(state)

    distributed.on_main(finish)  # rank 0 evaluates and writes while the others wait
    model.cpu()
    return out


@contextlib.contextmanager
def _no_speedups(model: torch.nn.Module, device: torch.device) -> Iterator[None]:
    yield


def _write(
    model: torch.nn.Module, name: str, test_set: ImageSet, out: Path, dev: torch.device, facts: dict
) -> None:
    """Evaluate the trained model on the test split and write its checkpoint with the sidecar."""
    try:
        indices = np.arange(len(test_set))
        correct = clean_correct(model, test_set, indices, batch_size=256, device=dev)
    except NonFiniteLogits as e:
        raise BenchError(f"{name} after training: {e} on the test split; nothing written") from None
    acc = [float(c.mean()) for c in correct.correct]
    meta = {
        **facts,
        "test_accuracy_per_exit": acc,
        "accuracy": acc[-1],
        "n_test": len(test_set),
        "versions": versions(),
        "created": utc_now(),
    }
    checkpoint.save(out, name, model.state_dict(), meta)


def _facts(
    model: torch.nn.Module,
    train_set: ImageSet,
    test_set: ImageSet,
    recipe: Recipe,
    seed: int,
    dev: torch.device,
    first: int,
    seconds: float,
) -> dict:
    """How the weights were made, for the checkpoint's sidecar."""
    return {
        "dataset": train_set.name,
        "data": {"train": data_guard.identity(train_set), "test": data_guard.identity(test_set)},
        "epoch": recipe.epochs,
        "model_config": checkpoint.model_config(model),
        "seed": seed,
        "recipe": asdict(recipe),
        "n_train": len(train_set),
        "train_seconds": round(seconds, 1),
        "resumed_after_epoch": first,
        "device": str(dev),
        "threads": torch.get_num_threads(),
        "world_size": distributed.world().size,
    }
