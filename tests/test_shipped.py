"""Shipped weights: the package's own load and match their sidecars; a model name resolves to them
by default and to the locally trained checkpoint with @trained; the rows say which; a damaged file,
another recipe or other test images are refused before anything is written."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import shutil
from pathlib import Path

import pytest
import torch

from bench import train
from bench.core.errors import BenchError
from bench.core.registry import MODELS
from bench.load import checkpoint, shipped
from bench.load.specs import default_checkpoint, load
from bench.store.results import read_rows
from tests.conftest import cli

DEFAULT_MODELS = ("mgnet_small", "mgbase_small", "resnet_small")
PACKAGE = shipped._package_weights() / "cluttered_fmnist"


@pytest.mark.parametrize("name", DEFAULT_MODELS)
def test_the_package_ships_each_default_model_with_a_sidecar_that_matches(name: str) -> None:
    path = PACKAGE / f"{name}.safetensors"
    sd, meta, sha = shipped.load(path)
    assert sha == hashlib.sha256(path.read_bytes()).hexdigest() == meta["sha256"]
    assert meta["model"] == name and meta["dataset"] == "cluttered_fmnist"
    shipped.check_recipe(meta, path)  # the data set's recipe as it stands
    assert meta["epoch"] == train.RECIPES["cluttered_fmnist"].epochs == len(meta["curve"])
    assert meta["command"] == f"bench train {name} --data cluttered_fmnist"
    assert meta["curve"][-1] == [round(a, 5) for a in meta["test_accuracy_per_exit"]]
    assert set(meta["data"]) == {"train", "test"} and meta["data"]["test"]["images"] == 2000
    model = MODELS.get(name).build()
    shipped.check_config(meta, checkpoint.model_config(model), path)  # not in the state dict
    checkpoint.load_weights(model, sd, name)  # strict: every key, every shape
    # the file holds the tensors alone: the same weights give the same bytes
    assert shipped.digest(model.state_dict()) == sha


@pytest.fixture
def tiny_shipped(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, trained: None) -> Path:
    """mgnet_tiny's session checkpoint shipped into a folder of this test (its recipe made the
    data set's own)."""
    meta = json.loads(checkpoint.sidecar(_trained_path()).read_text())
    recipe = train.Recipe(**meta["recipe"])
    monkeypatch.setitem(train.RECIPES, "cluttered_fmnist", recipe)
    monkeypatch.setattr(shipped, "ROOT", tmp_path / "shipped")
    assert cli("train mgnet_tiny --data cluttered_fmnist --if-missing --ship") == 0
    return shipped.path_for("cluttered_fmnist", "mgnet_tiny")


def _trained_path() -> Path:
    from bench.data import cache_dir

    return default_checkpoint(cache_dir(), "cluttered_fmnist", "mgnet_tiny")


def test_a_name_means_the_shipped_weights_and_at_trained_the_local_ones(
    tiny_shipped: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    sha = shipped.read_meta(tiny_shipped)["sha256"]
    local = checkpoint.verify(_trained_path())
    assert load("mgnet_tiny", "cluttered_fmnist", tmp_path).weights == f"shipped:{sha[:12]}"
    assert load("mgnet_tiny@shipped", "cluttered_fmnist", tmp_path).weights == f"shipped:{sha[:12]}"
    trained = load("mgnet_tiny@trained", "cluttered_fmnist", _trained_path().parents[2])
    assert trained.weights == local[:12]
    same = load("mgnet_tiny", "cluttered_fmnist", tmp_path).model.state_dict()
    assert all(torch.equal(v, trained.model.state_dict()[k]) for k, v in same.items())

    for spec, label in (("mgnet_tiny", f"shipped:{sha[:12]}"), ("mgnet_tiny@trained", local[:12])):
        out = tmp_path / spec.replace("@", "-")
        assert cli("run --models {} --suite smoke --n-images 4 --out {}", spec, out) == 0
        assert {r.weights for r in read_rows(out / "results.csv")} == {label}

    # training again (into a cache of its own) gives the same bits, and says so
    monkeypatch.setenv("BENCH_CACHE", str(tmp_path / "again"))
    capsys.readouterr()
    assert cli("train mgnet_tiny --data cluttered_fmnist") == 0
    assert f"bit-identical to the shipped weights (sha256 {sha[:12]})" in capsys.readouterr().out


def test_trained_weights_must_be_there_with_their_sidecar(
    trained: None, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(BenchError, match="no trained weights for mgnet_tiny on cluttered_fmnist"):
        load("mgnet_tiny@trained", "cluttered_fmnist", tmp_path)
    cache = tmp_path / "cache"
    copy = default_checkpoint(cache, "cluttered_fmnist", "mgnet_tiny")
    copy.parent.mkdir(parents=True)
    shutil.copy(_trained_path(), copy)  # the weights without their sidecar
    with pytest.raises(BenchError, match="has no sidecar"):
        load("mgnet_tiny@trained", "cluttered_fmnist", cache)


def _refused(tmp_path: Path, capsys: pytest.CaptureFixture[str], spec: str = "mgnet_tiny") -> str:
    """bench run's one error line; nothing written."""
    out = tmp_path / "out"
    capsys.readouterr()
    assert cli("run --models {} --suite smoke --n-images 4 --out {}", spec, out) != 0
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and not out.exists()
    return err


def test_damaged_or_mismatched_shipped_weights_are_refused(
    tiny_shipped: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    side = shipped.sidecar(tiny_shipped)
    meta = json.loads(side.read_text())
    blob = tiny_shipped.read_bytes()

    tiny_shipped.write_bytes(blob[:-1] + bytes([blob[-1] ^ 1]))
    assert "does not match its sidecar" in _refused(tmp_path, capsys)
    tiny_shipped.write_bytes(blob)

    other = {**meta, "recipe": {**meta["recipe"], "epochs": meta["recipe"]["epochs"] + 1}}
    side.write_text(json.dumps(other))
    assert "were trained with recipe" in _refused(tmp_path, capsys)

    elsewhere = {**meta, "data": {**meta["data"], "test": {"fingerprint": "0123456789abcdef"}}}
    side.write_text(json.dumps(elsewhere))
    assert "were measured on test images 0123456789abcdef" in _refused(tmp_path, capsys)

    no_print = {**meta, "data": {**meta["data"], "test": {"images": 2000}}}
    side.write_text(json.dumps(no_print))
    assert "the sidecar has no test-data fingerprint" in _refused(tmp_path, capsys)

    for field, bad in (("data", "x"), ("recipe", None), ("model_config", [1])):
        side.write_text(json.dumps({**meta, field: bad}))
        assert f"unreadable sidecar {side.name} (missing or malformed: {field})" in _refused(
            tmp_path, capsys
        )

    cfg = meta["model_config"]
    side.write_text(json.dumps({**meta, "model_config": {**cfg, "scale_max": 0.4}}))
    assert "trained with other model settings (scale_max)" in _refused(tmp_path, capsys)
    side.write_text(json.dumps(meta))

    # the shipped file named by path is not a checkpoint: one line that says how to load it
    assert f"{tiny_shipped} is a shipped weights file: evaluate it as mgnet_tiny@shipped" in (
        _refused(tmp_path, capsys, f"mgnet_tiny@{tiny_shipped}")
    )

    side.write_text("{not json")
    assert "unreadable sidecar" in _refused(tmp_path, capsys)
    side.write_text(json.dumps(meta))
    assert "no shipped weights for resnet_tiny" in _refused(tmp_path, capsys, "resnet_tiny@shipped")


def test_shipping_refuses_another_recipe(
    trained: None, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    monkeypatch.setattr(shipped, "ROOT", tmp_path / "shipped")
    recipe = train.RECIPES["cluttered_fmnist"]
    monkeypatch.setitem(train.RECIPES, "cluttered_fmnist", dataclasses.replace(recipe, epochs=99))
    capsys.readouterr()
    # a checkpoint made with another recipe, found by --if-missing
    assert cli("train mgnet_tiny --data cluttered_fmnist --if-missing --ship") != 0
    assert "checkpoint was trained with recipe" in capsys.readouterr().err
    # a recipe changed on the command line: refused before any training
    assert cli("train mgnet_tiny --data cluttered_fmnist --epochs 3 --ship") != 0
    assert "--ship takes the cluttered_fmnist recipe as it is" in capsys.readouterr().err
    assert not (tmp_path / "shipped").exists()
    # a package folder that cannot be written: refused before any training
    (tmp_path / "a-file").write_text("")
    monkeypatch.setattr(shipped, "ROOT", tmp_path / "a-file" / "weights")
    monkeypatch.setitem(train.RECIPES, "cluttered_fmnist", recipe)
    assert cli("train mgnet_tiny --data cluttered_fmnist --ship") != 0
    assert "is not a writable folder" in capsys.readouterr().err
