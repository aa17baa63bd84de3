"""Lets robustbench 1.1.1 import `autoattack` when only PyPI's `pyautoattack` is installed.

robustbench imports fra31's module `autoattack` (AutoAttack(model, norm, eps, ..., log_path) and
run_standard_evaluation(x, y, bs=...)); PyPI offers that code only as `pyautoattack`, with a
keyword-only constructor and `batch_size`. This adapter maps the old call style onto it and is
installed under the name `autoattack` only when no such module exists. robustbench also imports
`pkg_resources`, which setuptools >= 81 no longer ships (the project pins setuptools < 81).
"""

from __future__ import annotations

import importlib.util
import sys
import types
import warnings
from typing import Any


def _adapter() -> types.ModuleType:
    import pyautoattack
    import pyautoattack.state

    class AutoAttack(pyautoattack.AutoAttack):
        """fra31's signature on top of pyautoattack's AutoAttack."""

        def __init__(
            self,
            model: Any,
            norm: str = "Linf",
            eps: float = 0.3,
            seed: int | None = None,
            verbose: bool = True,
            attacks_to_run: list[str] | None = None,
            version: str = "standard",
            is_tf_model: bool = False,
            device: str = "cuda",
            log_path: str | None = None,
        ) -> None:
            if is_tf_model:
                raise NotImplementedError("TensorFlow models are not supported by pyautoattack")
            super().__init__(
                model,
                attacks=attacks_to_run or None,
                device=device,
                eps=eps,
                norm=norm,
                seed=seed,
                version=version,
            )
            self.verbose = verbose

        def run_standard_evaluation(
            self,
            x_orig: Any,
            y_orig: Any,
            bs: int = 250,
            return_labels: bool = False,
            state_path: Any = None,
        ) -> Any:
            if return_labels:
                raise NotImplementedError("return_labels is not supported by pyautoattack")
            return super().run_standard_evaluation(
                x_orig, y_orig, batch_size=bs, state_path=state_path
            )

    mod = types.ModuleType("autoattack", __doc__)
    mod.AutoAttack = AutoAttack  # type: ignore[attr-defined]
    mod.state = pyautoattack.state  # type: ignore[attr-defined]
    mod.__path__ = []  # a package, so `autoattack.state` resolves through sys.modules
    return mod


def install() -> None:
    """Make `import autoattack` and `autoattack.state` work (no-op if fra31's package exists)."""
    if "autoattack" in sys.modules or importlib.util.find_spec("autoattack") is not None:
        return
    mod = _adapter()
    sys.modules["autoattack"] = mod
    sys.modules["autoattack.state"] = mod.state


def import_robustbench() -> types.ModuleType:
    """`robustbench` with the adapter installed; a clear error when its imports still fail."""
    from bench.core.errors import BenchError

    install()
    try:
        with warnings.catch_warnings():  # its imports warn about pkg_resources and old timm paths
            warnings.simplefilter("ignore", (DeprecationWarning, UserWarning))
            import robustbench
            import robustbench.utils
    except ImportError as e:
        hint = (
            " (robustbench needs pkg_resources: install setuptools<81)"
            if "pkg_resources" in str(e)
            else ""
        )
        raise BenchError(f"robustbench cannot be imported: {e}{hint}") from None
    return robustbench
