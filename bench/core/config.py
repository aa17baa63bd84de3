"""A run's configuration: from the command line or a small TOML file kept beside its results."""

from __future__ import annotations

import math
import tomllib
from dataclasses import dataclass, fields, replace
from pathlib import Path
from types import UnionType
from typing import Any, Union, get_args, get_origin, get_type_hints

from bench.core.corruption_names import check_name
from bench.core.errors import BenchError

# of clean and corruption cells; attacks always run strict fp32
PRECISIONS = ("auto", "fp32", "bf16")


@dataclass(frozen=True, slots=True, kw_only=True)
class RunConfig:
    """Which models, data, conditions and seed; everything a result depends on that is not code."""

    models: tuple[str, ...]
    dataset: str = "cluttered_fmnist"
    data_root: str = ""
    suite: str = "clean"
    n_images: int | None = None  # cap on every cell's image count (None: the suite's own counts)
    seed: int = 0
    device: str = "auto"
    batch_size: int = 256
    # image-decoding processes for folder data sets (None: bench.data.loader_workers)
    workers: int | None = None
    out: str = "results/default"
    attack_backend: str = "bench"  # bench | torchattacks: who runs FGSM and PGD
    eps: tuple[float, ...] | None = None  # L∞ radii of the FGSM/PGD sweeps (None: the suite's)
    eps_l2: tuple[float, ...] | None = None  # L2 radii of the PGD-L2 sweep
    pgd_steps: int | None = None
    restarts: int | None = None
    extra_corruptions: bool = False  # add speckle_noise, gaussian_blur, spatter, saturate
    corruption_backend: str = "auto"  # auto: batched torch where parity is tested, else reference
    corruptions: tuple[str, ...] | None = None  # only these corruptions (None: the suite's)
    corruption_root: str = ""  # an ImageNet100-C folder, for the rendered source
    skip_corrupt_files: bool = False  # report and skip unreadable rendered files instead of failing
    # seconds per exit for timing latency/throughput on clean cells; 0: skip
    speed_budget: float = 1.0
    # clean/corruption cells: auto (bf16 autocast on CUDA if it passes the parity check), fp32, bf16
    precision: str = "auto"
    # the device's fp32 peak for fp32 rows' MFU when bench/cost/mfu.PEAK_TFLOPS lacks it (0: look
    # up)
    peak_tflops: float = 0.0
    peak_tflops_bf16: float = 0.0  # the same for bf16 rows

    def __post_init__(self) -> None:
        if not self.models:
            raise BenchError("no models given (use --models or a config file's `models = [...]`)")
        # per-image seeds take the run seed's 32 bits: another value would alias one
        if not 0 <= self.seed < 2**32:
            raise BenchError(f"--seed must be in [0, 2**32), got {self.seed}")
        if self.n_images is not None and self.n_images < 1:
            raise BenchError(f"--n-images must be positive, got {self.n_images}")
        if not 0 <= self.speed_budget <= 60:
            raise BenchError(
                f"--speed-budget must be within [0, 60] seconds, got {self.speed_budget}"
            )
        if self.batch_size < 1 or (self.workers is not None and self.workers < 0):
            raise BenchError("--batch-size must be positive and --workers not negative")
        if self.corruption_backend not in ("auto", "reference"):
            raise BenchError(
                f"unknown corruption backend {self.corruption_backend!r} (auto, reference)"
            )
        if self.precision not in PRECISIONS:
            raise BenchError(f"unknown precision {self.precision!r} ({', '.join(PRECISIONS)})")
        for option, value in (
            ("--peak-tflops", self.peak_tflops),
            ("--peak-tflops-bf16", self.peak_tflops_bf16),
        ):
            if not 0 <= value < 1e5:
                raise BenchError(f"{option} must be a positive number of TFLOP/s, got {value}")
        if self.attack_backend not in ("bench", "torchattacks"):
            raise BenchError(
                f"unknown attack backend {self.attack_backend!r} (bench, torchattacks)"
            )
        if (self.pgd_steps is not None and self.pgd_steps < 1) or (
            self.restarts is not None and self.restarts < 1
        ):
            raise BenchError("--pgd-steps and --restarts must be positive")
        if self.attack_backend == "torchattacks" and (self.restarts or 1) > 1:
            raise BenchError(
                "--restarts needs --attack-backend bench: torchattacks' PGD has no restarts"
            )
        if self.corruptions is not None:
            for name in self.corruptions:
                check_name(name)
        for e in self.eps or ():
            if not 0 <= e <= 1:  # NaN fails this too
                raise BenchError(
                    f"--eps {e} is outside [0, 1] (pixel units; write 4/255 for four levels)"
                )
        for e in self.eps_l2 or ():
            if not 0 <= e < math.inf:
                raise BenchError(f"--eps-l2 {e} must be a finite radius, at least 0")

    def with_overrides(self, **kw: Any) -> RunConfig:
        """Apply the command-line values that were actually given (None = not given)."""
        return replace(self, **{k: v for k, v in kw.items() if v is not None})


def load_toml(path: Path) -> dict[str, Any]:
    """Keys of a run.toml; `out` defaults to the file's folder."""
    try:
        data = tomllib.loads(path.read_text())
    except OSError as e:
        raise BenchError(f"cannot read config {path}: {e.strerror}") from None
    except tomllib.TOMLDecodeError as e:
        raise BenchError(f"{path}: invalid TOML: {e}") from None
    known = {f.name for f in fields(RunConfig)}
    unknown = sorted(set(data) - known)
    if unknown:
        raise BenchError(
            f"{path}: unknown keys {', '.join(unknown)} (known: {', '.join(sorted(known))})"
        )
    hints = get_type_hints(RunConfig)
    data = {k: _typed(path, k, v, hints[k]) for k, v in data.items()}
    data.setdefault("out", str(path.parent))
    return data


def _typed(path: Path, key: str, value: Any, hint: Any) -> Any:
    """A TOML value as its field's type, or one clear error: 0 may be 0.0; a string isn't a list."""
    args = [a for a in get_args(hint) if a is not type(None)]
    if get_origin(hint) in (Union, UnionType):
        hint = args[0]
    if get_origin(hint) is tuple:
        if not isinstance(value, list):
            raise BenchError(f"{path}: `{key}` must be a list, got {value!r}")
        return tuple(_scalar(path, key, v, get_args(hint)[0]) for v in value)
    return _scalar(path, key, value, hint)


def _scalar(path: Path, key: str, value: Any, kind: type) -> Any:
    if kind is float and isinstance(value, str) and key in ("eps", "eps_l2"):
        return parse_eps(value)  # "4/255", as on the command line
    if kind is float and isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value) + 0.0
    if isinstance(value, kind) and not (kind is int and isinstance(value, bool)):
        return value
    raise BenchError(f"{path}: `{key}` must be {_KIND_NAMES[kind]}, got {value!r}")


_KIND_NAMES = {str: "text", int: "a whole number", float: "a number", bool: "true or false"}


def parse_eps(text: str) -> float:
    """'4/255', '0.0157' or '0' -> a float in pixel units."""
    try:
        if "/" in text:
            num, den = text.split("/", 1)
            return float(num) / float(den) + 0.0  # + 0.0: -0 reads as 0, one key and one label
        return float(text) + 0.0
    except (ValueError, ZeroDivisionError):
        raise BenchError(f"cannot read epsilon {text!r} (write e.g. 4/255 or 0.0157)") from None
