"""Training with the MGNet recipe (SGD, OneCycle) and checkpoints that say how they were made."""
from __future__ import annotations

import time
import dataclasses
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from bench import checkpoint
from bench.data import ImageSet, iter_batches, to_unit
from bench.device import resolve_device
from bench.errors import BenchError
from bench.evaluate import clean_correct
from bench.provenance import utc_now, versions


@dataclass(frozen=True, slots=True, kw_only=True)
class Recipe:
    """Optimisation settings; α and s belong to the model's config, not here."""

    epochs: int
    batch_size: int
    lr: float  # OneCycle's max_lr
    momentum: float = 0.9
    weight_decay: float = 1e-4
    pct_start: float = 0.2
    hflip: bool = True

    def __post_init__(self) -> None:
        if self.epochs < 1 or self.batch_size < 1 or self.lr <= 0:
            raise BenchError(f"bad recipe: epochs, batch size and lr must be positive ({self})")


RECIPES = {
    # The paper's recipe (400 epochs, batch 256; its loader adds RandomResizedCrop(224); AutoAugment
    # is left out because it overlaps the ImageNet-C digital corruptions).
    "imagenet100": Recipe(epochs=400, batch_size=256, lr=0.1),
    # The CPU default: same optimiser and schedule, shortened to fit `make bench` on 2 cores.
    "cluttered_fmnist": Recipe(epochs=8, batch_size=128, lr=0.1),
}


def _augment(x: torch.Tensor, gen: torch.Generator, recipe: Recipe) -> torch.Tensor:
    """Random horizontal flips drawn from the training generator (reproducible per seed)."""
    if recipe.hflip:
        flip = torch.rand(x.shape[0], generator=gen) < 0.5
        x = torch.where(flip[:, None, None, None], x.flip(3), x)
    return x


def train(model: torch.nn.Module, name: str, train_set: ImageSet, test_set: ImageSet, recipe: Recipe,
          out: Path, *, seed: int = 0, device: str = "auto", workers: int = 0) -> Path:
    """Train `model` from its current weights and write a checkpoint with its sidecar to `out`."""
    dev = resolve_device(device)
    torch.manual_seed(seed)
    gen = torch.Generator().manual_seed(seed)
    model.to(dev).train()
    opt = torch.optim.SGD(model.parameters(), lr=recipe.lr, momentum=recipe.momentum,
                          weight_decay=recipe.weight_decay)
    steps_per_epoch = -(-len(train_set) // recipe.batch_size)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=recipe.lr, pct_start=recipe.pct_start,
                                                total_steps=recipe.epochs * steps_per_epoch)
    start = time.perf_counter()
    for epoch in range(recipe.epochs):
        model.train()
        order = torch.randperm(len(train_set), generator=gen).numpy()
        bar = tqdm(iter_batches(train_set, order, recipe.batch_size, workers), total=steps_per_epoch,
                   desc=f"train {name} {epoch + 1}/{recipe.epochs}", leave=False, unit="batch",
                   disable=None)  # None: bars on a terminal only, not in logs
        for _, images, labels in bar:
            x = _augment(to_unit(images, dev), gen, recipe)
            loss = model.train_loss(x, torch.from_numpy(labels).to(dev))
            if not torch.isfinite(loss):
                raise BenchError(f"training {name} diverged (loss {loss.item()}) at epoch {epoch + 1}")
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            bar.set_postfix(loss=f"{loss.item():.3f}")
    model.eval()
    correct = clean_correct(model, test_set, np.arange(len(test_set)), batch_size=256, device=dev)
    acc = [float(c.mean()) for c in correct.correct]
    cfg = getattr(model, "cfg", None)
    meta = {"dataset": train_set.name, "epoch": recipe.epochs,
            "model_config": asdict(cfg) if dataclasses.is_dataclass(cfg) else {}, "seed": seed, "recipe": asdict(recipe),
            "test_accuracy_per_exit": acc, "accuracy": acc[-1], "n_train": len(train_set),
            "n_test": len(test_set), "train_seconds": round(time.perf_counter() - start, 1),
            "device": str(dev), "versions": versions(),
            "created": utc_now()}
    checkpoint.save(out, name, model.state_dict(), meta)
    model.cpu()
    return out
