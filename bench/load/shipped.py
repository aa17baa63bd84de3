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


def is_shipped(path: Path) -> bool:
    """Whether a file's sidecar is a shipped-weights sidecar (not a checkpoint's)."""
    try:
        return json.loads(sidecar(path).read_text()).get("format") == FORMAT
    except (OSError, ValueError, AttributeError):
        return False


# sidecar field -> the type it must have, so a hand-edited sidecar fails as one clear line
FIELDS = {"sha256": str, "model": str, "dataset": str, "recipe": dict, "data": dict}


def read_meta(path: Path) -> dict[str, Any]:
    """The sidecar of a shipped weights file, checked to be ours."""
    side = sidecar(path)
    try:
        meta = json.loads(side.read_text())
        if not isinstance(meta, dict) or meta.get("format") != FORMAT:
            raise ValueError(f"not a {FORMAT} sidecar")
        wrong = [k for k, t in FIELDS.items() if not isinstance(meta.get(k), t)]
        if wrong or not isinstance(meta.get("model_config", {}), dict):
            raise ValueError(f"missing or malformed: {', '.join(wrong) or 'model_config'}")
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


def check_config(meta: Mapping[str, Any], config: Mapping[str, Any], path: Path) -> None:
    """Refuse shipped weights trained with other model settings than the registered model's."""
    made, config = meta.get("model_config", {}), json.loads(json.dumps(config))  # tuples: lists
    if made != config:
        diff = sorted(k for k in set(made) | set(config) if made.get(k) != config.get(k))
        raise BenchError(
            f"shipped weights {path} were trained with other model settings ({', '.join(diff)}) "
            "than the registered model: retrain them (`make weights`) or restore the settings"
        )


def check_data(meta: Mapping[str, Any], test_identity: Mapping[str, Any], path: Path) -> None:
    """Refuse shipped weights whose test split is not the one being evaluated (its fingerprint)."""
    made_on = meta["data"].get("test")
    if not isinstance(made_on, dict) or "fingerprint" not in made_on:
        raise BenchError(f"shipped weights {path}: the sidecar has no test-data fingerprint")
    if made_on["fingerprint"] != test_identity.get("fingerprint"):
        raise BenchError(
            f"shipped weights {path} were measured on test images {made_on.get('fingerprint')}, "
            f"but this {meta.get('dataset')} test split is {test_identity.get('fingerprint')} "
            "(another Fashion-MNIST copy or build?): train your own with `bench train` and "
            "evaluate NAME@trained"
        )


def check_writable(dataset: str) -> None:
    """Refuse --ship before training when the package's weights folder cannot be written, without
    creating anything (a later refusal must leave nothing behind)."""
    target = ROOT / dataset
    there = next(p for p in (target, *target.parents) if p.exists())
    if not there.is_dir() or not os.access(there, os.W_OK):
        raise BenchError(
            f"cannot write shipped weights to {target} ({there} is not a writable folder): "
            "ship from a source checkout (pip install -e)"
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
    try:
        blob = to_bytes(state_dict)
    except RuntimeError as e:  # safetensors refuses tensors that share memory
        raise BenchError(f"{name}'s weights cannot be shipped: {first_line(e)}") from None
    sha = hashlib.sha256(blob).hexdigest()
    keep = {k: v for k, v in facts.items() if k not in ("format", "sha256", "resumed_after_epoch")}
    meta = {
        "format": FORMAT,
        "sha256": sha,
        "command": command(name, dataset, int(facts.get("seed", 0))),
        **keep,
    }
    path = dest / dataset / f"{name}.safetensors"
    _write(path, blob, json.dumps(meta, indent=1) + "\n")
    return path, sha


def _write(path: Path, blob: bytes, side_text: str) -> None:
    """Write weights and sidecar through temporary files; on failure, leave neither behind."""
    tmp, side_tmp = path.with_name(f".{path.name}.tmp"), path.with_name(f".{path.stem}.json.tmp")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp.write_bytes(blob)
        side_tmp.write_text(side_text)
        # the sidecar first, as checkpoint.save: weights never stand beside another file's sidecar
        # for longer than one rename
        os.replace(side_tmp, sidecar(path))
        os.replace(tmp, path)
    except OSError as e:
        for t in (tmp, side_tmp):
            t.unlink(missing_ok=True)
        raise BenchError(f"cannot write shipped weights {path}: {e.strerror or e}") from None
