"""Training with one shared recipe per data set, resumable, under torchrun too."""

from bench.core.recipe import RECIPES, Recipe
from bench.train.loop import train

__all__ = ["RECIPES", "Recipe", "train"]
