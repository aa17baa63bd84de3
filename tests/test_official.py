"""Official MGNet (Lightning) checkpoints: made here with the official key names, not downloaded."""

from __future__ import annotations

import pickle
import sys
import types
from pathlib import Path

import pytest
import torch

from bench import models  # noqa: F401
from bench.core.errors import BenchError
from bench.core.registry import MODELS
from bench.load.specs import load


class _OneCycleLR:
    """torch 1.6's OneCycleLR as the file pickles it: its state holds a bound method.

    So saving the scheduler's state pickles the scheduler and its optimizer, whose `state` is a
    defaultdict of momentum buffers.
    """

    def __init__(self, optimizer: torch.optim.Optimizer) -> None:
        self.optimizer = optimizer
        self.anneal_func = self._annealing_cos

    def _annealing_cos(self, start: float, end: float, pct: float) -> float:
        return start


def _fake_class(module: types.ModuleType, cls: type, name: str) -> type:
    cls.__module__, cls.__qualname__, cls.__name__ = module.__name__, name, name
    setattr(module, name, cls)
    return cls


def _lightning_file(path: Path, name: str, hp: dict, drop: str | None = None) -> dict:
    """A checkpoint shaped like PL 1.0.8's, pickling classes that will not exist at load time: a
    callback class as a dict key, the hyper-parameters as Lightning's AttributeDict, a stepped SGD
    inside the scheduler's state."""
    torch.manual_seed(1)
    model = MODELS.get(name).build()
    sd = {
        f"model.{k}": v for k, v in model.state_dict().items() if not (drop and k.startswith(drop))
    }
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    for p in model.parameters():
        p.grad = torch.ones_like(p)
    opt.step()  # momentum buffers in opt.state, a defaultdict
    mods = {
        n: types.ModuleType(n)
        for n in (
            "pytorch_lightning",
            "pytorch_lightning.callbacks",
            "pytorch_lightning.callbacks.model_checkpoint",
            "pytorch_lightning.utilities",
            "pytorch_lightning.utilities.parsing",
            "torch16_lr_scheduler",
        )
    }

    class ModelCheckpoint:  # stands in for the callback class used as a dict key
        def __init__(self) -> None:
            self.best = 0.5

    checkpoint_cls = _fake_class(
        mods["pytorch_lightning.callbacks.model_checkpoint"], ModelCheckpoint, "ModelCheckpoint"
    )
    attribute_dict = _fake_class(
        mods["pytorch_lightning.utilities.parsing"],
        type("AttributeDict", (dict,), {}),
        "AttributeDict",
    )
    scheduler_cls = _fake_class(
        mods["torch16_lr_scheduler"], type("OneCycleLR", (_OneCycleLR,), {}), "OneCycleLR"
    )
    scheduler = scheduler_cls(opt)
    sys.modules.update(mods)
    try:
        ckpt = {
            "epoch": 399,
            "global_step": 1,
            "pytorch-lightning_version": "1.0.8",
            "callbacks": {checkpoint_cls: {"best_model_score": 0.5}},
            "optimizer_states": [opt.state_dict()],
            "lr_schedulers": [{k: v for k, v in scheduler.__dict__.items() if k != "optimizer"}],
            "state_dict": sd,
            "hparams_name": "kwargs",
            "hyper_parameters": attribute_dict(hp),
        }
        torch.save(ckpt, path)
    finally:
        for n in mods:
            del sys.modules[n]
    with pytest.raises(pickle.UnpicklingError):  # the file really needs more than weights_only
        torch.load(path, weights_only=True)
    return {k[len("model.") :]: v for k, v in sd.items()}


OURS_HP = {
    "model": "resnet18",
    "num_class": 100,
    "n_iter": 4,
    "scale": 2.33,
    "scale_min": 0.2,
    "scale_max": 0.5,
    "trans_method": "tight-crop",
    "s": 0.02,
    "alpha": 0.6,
}
BASE_HP = {**OURS_HP, "n_iter": 1, "scale": 1.0, "s": 1.0, "alpha": 0.0}


def test_official_mgnet_checkpoint_loads_and_matches(tmp_path: Path) -> None:
    path = tmp_path / "resnet18_ours.ckpt"
    sd = _lightning_file(path, "mgnet_r18", OURS_HP)
    lm = load(f"mgnet_r18@official:{path}", "imagenet100", tmp_path)
    assert lm.weights.startswith("official:") and lm.meta["epoch"] == 399
    for k, v in lm.model.state_dict().items():
        assert torch.equal(v, sd[k]), k


def test_official_baseline_loads(tmp_path: Path) -> None:
    path = tmp_path / "resnet18_baseline.ckpt"
    _lightning_file(path, "mgbase_r18", BASE_HP)
    assert load(f"mgbase_r18@official:{path}", "imagenet100", tmp_path).model.n_exits == 1


def test_baseline_file_into_mgnet_is_a_clear_error(tmp_path: Path) -> None:
    path = tmp_path / "resnet18_baseline.ckpt"
    # mislabelled: its hyper-parameters pass, its keys do not
    _lightning_file(path, "mgbase_r18", OURS_HP)
    with pytest.raises(BenchError, match="missing .*glimpse_fc"):
        load(f"mgnet_r18@official:{path}", "imagenet100", tmp_path)


def test_hyperparameter_mismatch_is_reported(tmp_path: Path) -> None:
    path = tmp_path / "x.ckpt"
    for hp, says in (
        ({**OURS_HP, "scale": 1.0}, "scale=1.0 "),
        ({**OURS_HP, "no_spatial_clue": True}, "no_spatial_clue=True "),
        ({**OURS_HP, "no_detach": True}, "no_detach=True "),
        (
            {k: v for k, v in OURS_HP.items() if k not in ("n_iter", "s")},
            "hyper_parameters lack n_iter, s,",
        ),
        ({}, "hyper_parameters lack n_iter, scale, scale_min"),
    ):
        _lightning_file(path, "mgnet_r18", hp)
        with pytest.raises(BenchError, match=says):
            load(f"mgnet_r18@official:{path}", "imagenet100", tmp_path)
    _lightning_file(path, "mgnet_r18", {**OURS_HP, "no_spatial_clue": False, "no_detach": False})
    load(f"mgnet_r18@official:{path}", "imagenet100", tmp_path)


def test_a_checkpoint_cannot_call_torch_functions_while_it_is_read(tmp_path: Path) -> None:
    """The restricted reader rebuilds tensors; `torch.save` and other acting calls get a stub."""
    from bench.models import official

    written = tmp_path / "written.pt"

    class Payload:
        def __reduce__(self) -> tuple:
            return torch.save, ({"pwned": 1}, str(written))

    path = tmp_path / "evil.ckpt"
    torch.manual_seed(1)
    sd = {f"model.{k}": v for k, v in MODELS.get("mgnet_r18").build().state_dict().items()}
    save, module = torch.save, torch.save.__module__
    save.__module__ = (
        "torch"  # the file names it as `torch.save`, a name the reader's torch namespace resolves
    )
    try:
        torch.save(
            {"state_dict": sd, "hyper_parameters": {**OURS_HP, "note": Payload()}, "epoch": 1}, path
        )
    finally:
        save.__module__ = module
    got, hp, epoch = official.read(path)
    assert not written.exists() and epoch == 1 and hp["n_iter"] == 4
    assert torch.equal(got["global_fc.fc.weight"], sd["model.global_fc.fc.weight"])


def test_shape_mismatch_and_missing_file(tmp_path: Path) -> None:
    path = tmp_path / "r50.ckpt"
    _lightning_file(path, "mgnet_r18", {**OURS_HP, "model": "resnet50"})
    with pytest.raises(BenchError, match="shape mismatches"):
        load(f"mgnet_r50@official:{path}", "imagenet100", tmp_path)
    with pytest.raises(BenchError, match="does not exist"):
        load(f"mgnet_r18@official:{tmp_path / 'nope.ckpt'}", "imagenet100", tmp_path)
    from bench.load.checkpoint import load_weights

    with pytest.raises(
        BenchError, match=r"^f holds 1 value\(s\) that are not tensors \(e.g. bias: list\)"
    ):
        load_weights(torch.nn.Linear(2, 2), {"weight": torch.zeros(2, 2), "bias": [0.0, 0.0]}, "f")
