"""Shipped weights: the default models' converged weights, kept in the package as pretrained
weights are (models/weights/<data set>/<model>.safetensors), each with a sidecar that says how to
make them again.

The safetensors file holds the tensors only, so its sha256 depends on the weights alone: training
again with the sidecar's command on the same machine and thread count gives the same file.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
from collections.abc import Mapping
from dataclasses import asdict
from pathlib import Path
from typing import Any

import torch

from bench.core.errors import BenchError, first_line

FORMAT = "bench-shipped-weights-v1"


def _package_weights() -> Path:
    """bench.models' weights folder, found without importing (and registering) the models."""
    spec = importlib.util.find_spec("bench.models")
    assert spec is not None and spec.submodule_search_locations
    return Path(spec.submodule_search_locations[0]) / "weights"


ROOT = _package_weights()


def path_for(dataset: str, name: str) -> Path:
    """Where model `name`'s shipped weights for `dataset` are, if any."""
    return ROOT / dataset / f"{name}.safetensors"


def sidecar(path: Path) -> Path:
    return path.with_suffix(".json")


def available(dataset: str, name: str) -> bool:
    return path_for(dataset, name).is_file()


def names(dataset: str) -> list[str]:
    """The models with shipped weights for `dataset`."""
    return sorted(p.stem for p in (ROOT / dataset).glob("*.safetensors"))


def to_bytes(state_dict: Mapping[str, torch.Tensor]) -> bytes:
    """The weights as a safetensors file, bytes that depend on the tensors alone."""
    from safetensors.torch import save

    return save({k: v.detach().cpu().contiguous() for k, v in state_dict.items()})


def digest(state_dict: Mapping[str, torch.Tensor]) -> str:
    """The sha256 the weights would have as a shipped file."""
    return hashlib.sha256(to_bytes(state_dict)).hexdigest()


def read_meta(path: Path) -> dict[str, Any]:
    """The sidecar of a shipped weights file, checked to be ours."""
    side = sidecar(path)
    try:
        meta = json.loads(side.read_text())
        if not isinstance(meta, dict) or meta.get("format") != FORMAT:
            raise ValueError(f"not a {FORMAT} sidecar")
        if not isinstance(meta.get("sha256"), str):
            raise ValueError("no sha256")
    except (OSError, ValueError) as e:
        raise BenchError(f"shipped weights {path}: unreadable sidecar {side.name} ({e})") from None
    return meta


def load(path: Path) -> tuple[dict[str, torch.Tensor], dict[str, Any], str]:
    """(state_dict, sidecar, sha256) of a shipped weights file whose sha256 matches its sidecar."""
    if not path.is_file():
        raise BenchError(f"shipped weights {path} do not exist")
    meta = read_meta(path)
    blob = path.read_bytes()
    sha = hashlib.sha256(blob).hexdigest()
    if sha != meta["sha256"]:
        raise BenchError(
            f"shipped weights {path}: sha256 {sha[:12]} does not match its sidecar "
            f"({meta['sha256'][:12]}); restore the file (git checkout) or reinstall"
        )
    from safetensors.torch import load as from_bytes

    try:
        sd = from_bytes(blob)
    except Exception as e:  # noqa: BLE001  (safetensors raises several types for a bad file)
        raise BenchError(f"shipped weights {path} cannot be read: {first_line(e)}") from None
    return sd, meta, sha


def check_recipe(meta: Mapping[str, Any], path: Path) -> None:
    """Refuse shipped weights made with another recipe than the data set's shared one."""
    from bench.train.recipe import RECIPES

    dataset = meta.get("dataset")
    want = asdict(RECIPES[dataset]) if dataset in RECIPES else None
    if meta.get("recipe") != want:
        raise BenchError(
            f"shipped weights {path} were trained with recipe {meta.get('recipe')}, but "
            f"{dataset}'s recipe is {want}: retrain them (`make weights`) or restore the recipe"
        )


def check_data(meta: Mapping[str, Any], test_identity: Mapping[str, Any], path: Path) -> None:
    """Refuse shipped weights whose test split is not the one being evaluated (its fingerprint)."""
    made_on = meta.get("data", {}).get("test", {})
    if made_on.get("fingerprint") != test_identity.get("fingerprint"):
        raise BenchError(
            f"shipped weights {path} were measured on test images {made_on.get('fingerprint')}, "
            f"but this {meta.get('dataset')} test split is {test_identity.get('fingerprint')} "
            "(another Fashion-MNIST copy or build?): train your own with `bench train` and "
            "evaluate NAME@trained"
        )


def command(name: str, dataset: str, seed: int) -> str:
    """The one command that trains the weights again."""
    return f"bench train {name} --data {dataset}" + (f" --seed {seed}" if seed else "")


def ship(
    state_dict: Mapping[str, torch.Tensor], facts: Mapping[str, Any], dest: Path
) -> tuple[Path, str]:
    """Write a trained checkpoint's weights and facts as shipped weights; (path, sha256)."""
    blob = to_bytes(state_dict)
    sha = hashlib.sha256(blob).hexdigest()
    name, dataset = facts["model"], facts["dataset"]
    keep = {k: v for k, v in facts.items() if k not in ("format", "sha256", "resumed_after_epoch")}
    meta = {
        "format": FORMAT,
        "sha256": sha,
        "command": command(name, dataset, int(facts.get("seed", 0))),
        **keep,
    }
    path = dest / dataset / f"{name}.safetensors"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(blob)
    sidecar(path).write_text(json.dumps(meta, indent=1) + "\n")
    return path, sha
