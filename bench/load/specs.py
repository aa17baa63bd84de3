"""Model specs -> ready models: `NAME[@WEIGHTS]`, `file.py[:factory]`, `pkg.module:factory`, and
other libraries' models `tv:NAME[@ENUM|@FILE]`, `timm:NAME[@FILE]`, `rb:[DATASET/THREAT/]NAME`
(models/sources).

WEIGHTS is empty (the shipped weights where the package has them for the data set, else the
checkpoint `bench train` cached), `shipped`, `trained` (the cached checkpoint), `random` (seeded
initialisation), a path to one of our checkpoints or to a state dict, or `official:PATH`.
"""

from __future__ import annotations

import importlib
import importlib.util
import logging
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from bench.core.card import ModelCard
from bench.core.errors import BenchError
from bench.core.registry import MODELS
from bench.load import checkpoint, shipped
from bench.load.weights_file import read_state_dict

log = logging.getLogger(__name__)


@dataclass(frozen=True, eq=False)
class LoadedModel:
    """A built model in eval mode, with the card and the label of its weights."""

    spec: str
    card: ModelCard
    model: Any  # models.base.BenchModel
    weights: str
    meta: dict


def default_checkpoint(cache: Path, dataset: str, name: str) -> Path:
    """Where `bench train` keeps the weights of model `name` trained on `dataset`."""
    return cache / "checkpoints" / dataset / f"{name}.pt"


EXTERNAL_SOURCES = ("torchvision", "timm", "robustbench")

_IMPORTED: dict[str, tuple[Any, list[str]]] = {}


def _import(module_part: str) -> Any:
    """A user's file (its folder first on sys.path, as Python runs a script) or module (the working
    folder first, as `python -m` does), so it imports its own packages, whatever their names."""
    try:
        if not module_part.endswith(".py"):
            _first_on_path(Path.cwd())
            return importlib.import_module(module_part)
        path = Path(module_part)
        if not path.is_file():
            raise BenchError(f"model file {path} does not exist")
        _first_on_path(path.resolve().parent)
        spec = importlib.util.spec_from_file_location(f"bench_user.{path.stem}", path)
        assert spec is not None and spec.loader is not None
        mod = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(mod)
        return mod
    except BenchError:
        raise
    except ModuleNotFoundError as e:
        if e.name and e.name.partition(".")[0] == "bench" and e.name != "bench":
            raise BenchError(
                f"importing {module_part} failed: it imports {e.name}, but `bench` is this suite's "
                "package; rename your own package `bench` (e.g. to `my_bench`)"
            ) from None
        raise BenchError(f"importing {module_part} failed: ModuleNotFoundError: {e}") from None
    except Exception as e:  # noqa: BLE001  (a user's file can raise anything)
        raise BenchError(f"importing {module_part} failed: {type(e).__name__}: {e}") from None


def _first_on_path(folder: Path) -> None:
    if str(folder) in sys.path:
        sys.path.remove(str(folder))
    sys.path.insert(0, str(folder))


def _import_user(target: str) -> list[str]:
    """Import a user's file or module once; return the names of the models the spec points at."""
    module_part, factory = (target, "") if target.endswith(".py") else target.rsplit(":", 1)
    if module_part not in _IMPORTED:
        before = set(MODELS.names())
        _IMPORTED[module_part] = (_import(module_part), sorted(set(MODELS.names()) - before))
    mod, registered = _IMPORTED[module_part]
    if not factory:
        if not registered:
            raise BenchError(
                f"{target} registers no model: decorate a factory with @bench.register_model(...)"
            )
        return registered
    fn = getattr(mod, factory, None)
    if fn is None:
        raise BenchError(f"{module_part} has no attribute {factory!r}")
    names = [n for n in MODELS.names() if MODELS.get(n).build is fn]
    if not names:
        raise BenchError(
            f"{module_part}:{factory} is not registered: decorate it with "
            "@bench.register_model(name, num_classes=..., input_size=..., mean=..., std=...)"
        )
    return names


def _split(spec: str) -> tuple[str, str, str]:
    """(model, "@", weights) at the first "@" not in a model file's path (`proj@v2/net.py`)."""
    for i in [i for i, c in enumerate(spec) if c == "@"][1:] + [len(spec)]:
        file_part = spec[:i].rpartition(".py:")[0] + ".py" if ".py:" in spec[:i] else spec[:i]
        if "@" in file_part and file_part.endswith(".py") and Path(file_part).is_file():
            return spec[:i], spec[i : i + 1], spec[i + 1 :]
    return spec.partition("@")


def expand(spec: str) -> list[str]:
    """Registry names in a spec (a user file may register several), each with its weights part."""
    from bench import models  # noqa: F401  (registers the built-in models)
    from bench.models import sources

    target, at, weights = _split(spec)
    if target in MODELS:
        return [spec]
    if sources.is_external(target):
        return [sources.register(target) + at + weights]
    if target.endswith(".py") or ":" in target:
        return [n + at + weights for n in _import_user(target)]
    MODELS.get(target)  # raises with close matches
    return [spec]


def check_fits(lm: LoadedModel, n_classes: int, image_shape: tuple[int, ...], dataset: str) -> None:
    """Refuse, before any work, a model whose class count or input size isn't the data set's."""
    if lm.card.num_classes != n_classes:
        raise BenchError(
            f"{lm.card.name} has {lm.card.num_classes} classes but {dataset} has {n_classes}"
        )
    if tuple(image_shape[:2]) != (lm.card.input_size, lm.card.input_size):
        raise BenchError(
            f"{lm.card.name} takes {lm.card.input_size}-px images but {dataset} has "
            f"{image_shape[0]}x{image_shape[1]}"
        )


def _build(card: ModelCard, init_seed: int) -> tuple[Any, Any]:
    """(the factory's module, the model with the contract) at the seeded initialisation."""
    from bench.models.base import as_bench_model

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(init_seed)  # `@random` means the same random weights every time
        try:
            net = card.build()
            model = as_bench_model(net, card.mean, card.std)
        except BenchError:
            raise
        except Exception as e:  # noqa: BLE001
            raise BenchError(
                f"building model {card.name!r} failed: {type(e).__name__}: {e}"
            ) from None
    if model.n_exits != len(card.exits):
        raise BenchError(
            f"{card.name}: its card declares exits {card.exits} but the model has {model.n_exits}"
        )
    return net, model


def _official(model: Any, name: str, weights: str) -> tuple[str, dict]:
    """An official MGNet Lightning checkpoint, its hyper-parameters checked against the card."""
    from bench.models import official
    from bench.models.mgnet import MGNet

    path = Path(weights[len("official:") :])
    if not isinstance(model, MGNet):
        raise BenchError(f"official checkpoints hold MGNet models; {name} is not one")
    sd, hp, epoch = official.read(path)
    official.check_hparams(model, hp, path)
    checkpoint.load_weights(model, sd, f"official checkpoint {path}")
    meta = {"epoch": epoch, "hyper_parameters": {k: str(v) for k, v in hp.items()}}
    return "official:" + checkpoint.sha256(path)[:12], meta


def _no_weights(card: ModelCard, dataset: str) -> BenchError:
    """Why a model has no weights for a data set, and what to do."""
    name = card.name
    if card.data and card.data != dataset:
        return BenchError(
            f"{name} is made for {card.data} ({card.num_classes} classes, {card.input_size} px), "
            f"not {dataset}: choose a model made for it (`bench models`)"
        )
    return BenchError(
        f"no trained weights for {name} on {dataset}: run `bench train {name} --data {dataset}`, "
        f"or evaluate untrained with {name}@random"
    )


def _foreign(net: Any, name: str, path: Path) -> tuple[str, dict]:
    """Weights trained elsewhere (no sidecar): the factory's module's state dict, recorded by its
    sha256."""
    try:
        sd = read_state_dict(path)
    except BenchError as e:
        raise BenchError(f"{e} (official MGNet files load with @official:PATH)") from None
    checkpoint.load_weights(net, sd, f"weights file {path}")
    digest = checkpoint.sha256(path)
    log.warning(
        "%s: %s was not made by `bench train` (no sidecar): loaded as a plain state dict, "
        "recorded as weights file:%s (sha256 %s)",
        name,
        path,
        digest[:12],
        digest,
    )
    return "file:" + digest[:12], {"file": str(path), "sha256": digest}


def _shipped(model: Any, card: ModelCard, dataset: str) -> tuple[str, dict]:
    """The weights shipped with the package, checked against their sha256 and the recipe."""
    path = shipped.path_for(dataset, card.name)
    if not path.is_file():
        raise BenchError(
            f"no shipped weights for {card.name} on {dataset} (shipped: "
            f"{', '.join(shipped.names(dataset)) or 'none'}): train them with `bench train "
            f"{card.name} --data {dataset}` and use {card.name}@trained"
        )
    sd, meta, digest = shipped.load(path)
    if meta.get("model") != card.name or meta.get("dataset") != dataset:
        raise BenchError(f"shipped weights {path} are {meta.get('model')} on {meta.get('dataset')}")
    shipped.check_recipe(meta, path)
    shipped.check_config(meta, checkpoint.model_config(model), path)
    checkpoint.load_weights(model, sd, f"shipped weights {path}")
    return "shipped:" + digest[:12], meta


def check_test_split(loaded: list[LoadedModel], images: Any, dataset: str) -> None:
    """Refuse shipped weights on test images other than those they were measured on; loading a
    model cannot check this, since it has no data, so every caller that scores a split does."""
    made = [lm for lm in loaded if lm.weights.startswith("shipped:")]
    if made:
        from bench.store import data_guard

        here = data_guard.identity(images)  # once: it hashes the whole split
        for lm in made:
            shipped.check_data(lm.meta, here, shipped.path_for(dataset, lm.card.name))


def _trained(card: ModelCard, dataset: str, cache: Path) -> Path:
    """The checkpoint `bench train` cached for the model and data set."""
    path = default_checkpoint(cache, dataset, card.name)
    if not path.is_file():
        raise _no_weights(card, dataset)
    return path


def _ours(
    net: Any, model: Any, card: ModelCard, weights: str, dataset: str, cache: Path
) -> tuple[str, dict]:
    """Shipped weights (the default where there are some), the checkpoint `bench train` cached
    (`@trained`, or the default otherwise), a checkpoint path, or a foreign weights file."""
    if weights == "shipped" or (not weights and shipped.available(dataset, card.name)):
        return _shipped(model, card, dataset)
    local = weights in ("", "trained")
    path = _trained(card, dataset, cache) if local else Path(weights)
    if not local and path.is_file() and not checkpoint.sidecar(path).is_file():
        return _foreign(net, card.name, path)
    if not local and shipped.is_shipped(path):
        raise BenchError(f"{path} is a shipped weights file: evaluate it as {card.name}@shipped")
    sd, meta, digest = checkpoint.load(path)
    if meta.get("model") not in (None, card.name):
        raise BenchError(f"checkpoint {path} was trained for {meta['model']}, not {card.name}")
    checkpoint.load_weights(model, sd, f"checkpoint {path}")
    return digest[:12], meta


def load(spec: str, dataset: str, cache: Path, init_seed: int = 0) -> LoadedModel:
    """Build the model named by a registry spec and load its weights (eval mode, CPU).

    `init_seed` seeds the initialisation (`@random` is seed 0; `bench train --seed` its own).
    """
    name, _, weights = spec.partition("@")
    card = MODELS.get(name)
    net, model = _build(card, init_seed)
    if weights == "random":
        label, meta = "random", {}
    elif card.source in EXTERNAL_SOURCES:
        from bench.models import sources

        label, meta = sources.load(card, net, weights, cache)
    elif weights.startswith("official:"):
        label, meta = _official(model, name, weights)
    else:
        label, meta = _ours(net, model, card, weights, dataset, cache)
    model.eval()
    return LoadedModel(spec=spec, card=card, model=model, weights=label, meta=meta)
