"""Import of the official MGNet checkpoints (PyTorch Lightning 1.0.8 files, keys prefixed `model.`).

The files pickle Lightning and scheduler objects, so `weights_only=True` fails and a full unpickle
would need pytorch_lightning; a restricted unpickler rebuilds tensors and builds inert stubs for
every other global (torch functions included), and the loader keeps only `state_dict`,
`hyper_parameters` and `epoch`.
"""

from __future__ import annotations

import pickle
from pathlib import Path
from typing import Any

import torch

from bench.core.errors import BenchError, first_line
from bench.models.mgnet import MGNet

_SAFE = {
    ("collections", "OrderedDict"),
    ("builtins", "set"),
    ("builtins", "frozenset"),
    ("builtins", "slice"),
    ("builtins", "complex"),
    ("builtins", "range"),
}


def _torch_allowed(module: str, name: str) -> bool:
    """What rebuilding tensors needs (types, dtypes, devices, the tensor rebuilders), no function
    that acts: a file naming `torch.save` or `torch.load` gets an inert stub like any other global.
    """
    if module == "torch":
        return (
            name in ("Size", "device", "Tensor")
            or name.endswith("Storage")
            or isinstance(getattr(torch, name, None), torch.dtype)
        )
    return (module == "torch._utils" and name.startswith("_rebuild_")) or (module, name) in {
        ("torch._tensor", "_rebuild_from_type_v2"),
        ("torch.nn.parameter", "Parameter"),
    }


class _Stub:
    """Stands in for any class the file names but we will not import; accepts and keeps state, the
    items of a dict subclass (Lightning's AttributeDict, an optimizer's defaultdict) and the
    elements of a list subclass."""

    def __init__(
        self, *args: Any, **kwargs: Any
    ) -> None:  # not called for objects pickled with __new__ alone
        self._args = args

    def __setstate__(self, state: Any) -> None:
        self._state = state

    def __setitem__(self, key: Any, value: Any) -> None:
        self.dict_items()[key] = value

    def append(self, value: Any) -> None:
        self.__dict__.setdefault("_list", []).append(value)

    def extend(self, values: Any) -> None:
        self.__dict__.setdefault("_list", []).extend(values)

    def dict_items(self) -> dict:
        """The dict items the file gave this object."""
        return self.__dict__.setdefault("_items", {})

    def __call__(self, *args: Any, **kwargs: Any) -> _Stub:
        return _Stub()


def _stub_type(module: str, name: str) -> type:
    return type(name, (_Stub,), {"__module__": f"stub.{module}"})


def _stub_getattr(obj: Any, name: str) -> _Stub:  # bound methods pickled as getattr(obj, name)
    return _Stub()


class _Unpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str) -> Any:
        if _torch_allowed(module, name) or (module, name) in _SAFE:
            return super().find_class(module, name)
        if (module, name) == ("builtins", "getattr"):
            return _stub_getattr
        return _stub_type(module, name)


class _RestrictedPickle:
    """A pickle-module lookalike for torch.load."""

    Unpickler = _Unpickler
    __name__ = "restricted_pickle"

    @staticmethod
    def load(f: Any, **kw: Any) -> Any:
        return _Unpickler(f, **kw).load()


def read(path: Path) -> tuple[dict[str, torch.Tensor], dict[str, Any], int | None]:
    """(state_dict with `model.` stripped, hyper_parameters, epoch) of an official checkpoint."""
    if not path.is_file():
        raise BenchError(f"official checkpoint {path} does not exist")
    try:
        blob = torch.load(
            path, map_location="cpu", weights_only=False, pickle_module=_RestrictedPickle
        )
    except Exception as e:  # noqa: BLE001
        raise BenchError(f"{path}: not a readable Lightning checkpoint ({first_line(e)})") from None
    if not isinstance(blob, dict) or not isinstance(blob.get("state_dict"), dict):
        raise BenchError(
            f"{path}: no `state_dict` in the file (is it an official MGNet checkpoint?)"
        )
    sd = blob["state_dict"]
    if not all(k.startswith("model.") for k in sd):
        raise BenchError(
            f"{path}: keys are not prefixed `model.` as the official LitModule writes them"
        )
    hp = blob.get("hyper_parameters") or {}
    # Lightning's AttributeDict, a dict subclass
    hp = hp.dict_items() if isinstance(hp, _Stub) else hp
    return (
        {k[len("model.") :]: v for k, v in sd.items()},
        dict(hp) if isinstance(hp, dict) else {},
        blob.get("epoch") if isinstance(blob.get("epoch"), int) else None,
    )


def check_hparams(model: MGNet, hp: dict[str, Any], path: Path) -> None:
    """The state dict lacks glimpse count, scale, s and scale range: compare them to the card."""
    c = model.cfg
    expect = {
        "n_iter": c.n_iter,
        "scale": c.scale,
        "scale_min": c.scale_min,
        "scale_max": c.scale_max,
        "trans_method": c.translation,
        "num_class": model.global_fc.fc.out_features,
    }
    if c.n_iter > 1:
        expect.update(s=c.grad_scale, alpha=c.alpha)
    missing = [k for k in expect if k not in hp]
    # the weights alone would load into a model with another glimpse count or scale range
    if missing:
        raise BenchError(
            f"{path}: its hyper_parameters lack {', '.join(missing)}, so the glimpse settings "
            "cannot be checked against the chosen model (the official LitModule saves every "
            "argument)"
        )
    # Store-true flags of the official code, False unless given: one changes the forward pass, one
    # the gradient.
    expect.update(no_spatial_clue=False, no_detach=not c.detach_affine)
    bad = [
        f"{k}={hp[k]!r} (model has {v!r})"
        for k, v in expect.items()
        if k in hp
        and not (
            hp[k] == v
            or (isinstance(v, float) and isinstance(hp[k], (int, float)) and abs(hp[k] - v) < 1e-9)
        )
    ]
    if bad:
        raise BenchError(f"{path}: hyper-parameters differ from the chosen model: {', '.join(bad)}")
