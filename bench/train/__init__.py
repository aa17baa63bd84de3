"""Training with one shared recipe per data set, resumable, under torchrun too."""

from bench.train.loop import train
from bench.train.recipe import RECIPES, Recipe

__all__ = ["RECIPES", "Recipe", "train"]
