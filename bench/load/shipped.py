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
import os
from collections.abc import Mapping
from dataclasses import asdict
from pathlib import Path
from typing import Any

import torch

from bench.core.errors import BenchError, first_line
from bench.core.recipe import RECIPES

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
    """The JSON beside a weights file that says how it was made."""
    return path.with_suffix(".json")


def available(dataset: str, name: str) -> bool:
    """Whether the package ships weights of model `name` for `dataset`."""
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


def _other_recipe(meta: Mapping[str, Any]) -> str:
    """How the weights' recipe differs from their data set's shared one ('' if it does not)."""
    dataset = meta.get("dataset")
    want = asdict(RECIPES[dataset]) if dataset in RECIPES else None
    if meta.get("recipe") == want:
        return ""
    return f"trained with recipe {meta.get('recipe')}, but {dataset}'s recipe is {want}"


def check_recipe(meta: Mapping[str, Any], path: Path) -> None:
    """Refuse shipped weights made with another recipe than the data set's shared one."""
    other = _other_recipe(meta)
    if other:
        raise BenchError(
            f"shipped weights {path} were {other}: retrain them (`make weights`) or restore the "
            "recipe"
        )


def check_data(meta: Mapping[str, Any], test_identity: Mapping[str, Any], path: Path) -> None:
    """Refuse shipped weights whose test split is not the one being evaluated (its fingerprint)."""
    made_on = (meta.get("data") or {}).get("test") or {}
    if "fingerprint" not in made_on:
        raise BenchError(f"shipped weights {path}: the sidecar has no test-data fingerprint")
    if made_on["fingerprint"] != test_identity.get("fingerprint"):
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
    name, dataset = facts["model"], facts["dataset"]
    other = _other_recipe(facts)
    if other:
        raise BenchError(f"{name}'s checkpoint was {other}: train it again before shipping")
    missing = [k for k in ("curve", "data") if not facts.get(k)]
    if missing:
        raise BenchError(
            f"{name}'s checkpoint has no {' or '.join(missing)} (made before bench train recorded "
            "them): train it again before shipping"
        )
    blob = to_bytes(state_dict)
    sha = hashlib.sha256(blob).hexdigest()
    keep = {k: v for k, v in facts.items() if k not in ("format", "sha256", "resumed_after_epoch")}
    meta = {
        "format": FORMAT,
        "sha256": sha,
        "command": command(name, dataset, int(facts.get("seed", 0))),
        **keep,
    }
    path = dest / dataset / f"{name}.safetensors"
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp, side_tmp = path.with_name(f".{path.name}.tmp"), path.with_name(f".{path.stem}.json.tmp")
    tmp.write_bytes(blob)
    side_tmp.write_text(json.dumps(meta, indent=1) + "\n")
    # the sidecar first, as checkpoint.save: weights never stand beside another file's sidecar
    # for longer than one rename
    os.replace(side_tmp, sidecar(path))
    os.replace(tmp, path)
    return path, sha
