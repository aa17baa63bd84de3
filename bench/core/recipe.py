"""Training recipes: one shared optimiser and schedule per data set, the same for every model."""

from __future__ import annotations

from dataclasses import dataclass

from bench.core.errors import BenchError


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
    # The CPU default: the same optimiser and schedule. 40 epochs from the learning curves
    # (docs/training.md): the budget at which every model's test accuracy has flattened.
    "cluttered_fmnist": Recipe(epochs=40, batch_size=128, lr=0.1),
}
