"""Training resumes after an interruption and ends with the weights of an uninterrupted run."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
import torch

from bench.core.errors import BenchError
from bench.data import load_split
from bench.load import checkpoint
from bench.load.specs import load
from bench.train import Recipe, train
from bench.train import loop as train_mod
from bench.train import state as train_state

RECIPE = Recipe(epochs=2, batch_size=64, lr=0.05)
_REAL_EPOCH = train_mod._epoch


class _Stop(Exception):
    """Stands for Ctrl-C or a lost machine (pytest keeps a real KeyboardInterrupt for itself)."""


def _train(tmp: Path, out: Path, recipe: Recipe = RECIPE) -> Path:
    tr, te = load_split("cluttered_fmnist", "train"), load_split("cluttered_fmnist", "test")
    lm = load("mgnet_tiny@random", "cluttered_fmnist", tmp)
    return train(lm.model, "mgnet_tiny", tr, te, recipe, out)


def _epochs_run(monkeypatch: pytest.MonkeyPatch, stop_at: int | None = None) -> list[int]:
    """Record the epochs `train` runs; stop it as epoch `stop_at` begins."""
    ran: list[int] = []

    def spy(*args: object) -> None:
        epoch = args[8]
        if epoch == stop_at:
            raise _Stop
        ran.append(epoch)
        _REAL_EPOCH(*args)

    monkeypatch.setattr(train_mod, "_epoch", spy)
    return ran


def test_interrupted_training_resumes_to_the_same_weights(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    whole = checkpoint.load(_train(tmp_path, tmp_path / "whole.pt"))

    out = tmp_path / "cut.pt"
    ran = _epochs_run(monkeypatch, stop_at=1)
    with pytest.raises(_Stop):
        _train(tmp_path, out)
    assert ran == [0] and not out.exists() and train_state.path_for(out).is_file()

    ran = _epochs_run(monkeypatch)
    sd, meta, _ = checkpoint.load(_train(tmp_path, out))
    assert ran == [1]  # only the epoch that was left
    assert meta["resumed_after_epoch"] == 1 and whole[1]["resumed_after_epoch"] == 0
    assert sd.keys() == whole[0].keys()
    assert all(torch.equal(sd[k], whole[0][k]) for k in sd), (
        "resumed weights differ from the uninterrupted run's"
    )
    assert meta["test_accuracy_per_exit"] == whole[1]["test_accuracy_per_exit"]
    # the learning curve survives the interruption: one entry per epoch, the last the final one
    assert meta["curve"] == whole[1]["curve"] and len(meta["curve"]) == RECIPE.epochs
    assert meta["curve"][-1] == [round(a, 5) for a in meta["test_accuracy_per_exit"]]
    assert not train_state.path_for(out).exists()  # the state goes once the checkpoint is written


def test_a_state_from_other_settings_or_unreadable_is_not_used(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    out = tmp_path / "m.pt"
    _epochs_run(monkeypatch, stop_at=1)
    with pytest.raises(_Stop):
        _train(tmp_path, out)

    ran = _epochs_run(monkeypatch)
    with caplog.at_level(logging.WARNING, logger="bench.train.state"):
        _, meta, _ = checkpoint.load(_train(tmp_path, out, Recipe(epochs=2, batch_size=64, lr=0.1)))
    assert ran == [0, 1] and meta["resumed_after_epoch"] == 0
    assert "other settings" in caplog.text

    state = train_state.path_for(out)
    state.write_bytes(b"not a torch file")
    ran = _epochs_run(monkeypatch)
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="bench.train.state"):
        _train(tmp_path, out)
    assert ran == [0, 1] and "unreadable" in caplog.text and not state.exists()


def test_a_loss_that_is_not_finite_stops_training_and_names_the_ranks_it_came_from(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from bench.models.mgnet import MGNet

    real = MGNet.train_loss
    monkeypatch.setattr(MGNet, "train_loss", lambda self, x, y: real(self, x, y) * float("nan"))
    out = tmp_path / "nan.pt"
    with pytest.raises(BenchError, match=r"^training mgnet_tiny diverged \(loss nan\) at epoch 1$"):
        _train(tmp_path, out)
    assert not out.exists()

    # two healthy-looking ranks and two that diverged: only those are named
    from bench.devices import distributed

    monkeypatch.setattr(distributed, "all_ok", lambda ok: False)
    monkeypatch.setattr(distributed, "gather", lambda obj: [obj, float("nan"), 0.25, float("inf")])
    with pytest.raises(
        BenchError, match=r"^training m diverged \(loss nan on rank 1, inf on rank 3\) at epoch 3$"
    ):
        train_mod._stop_if_diverged(torch.tensor(0.5), "m", 2)
