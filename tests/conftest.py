"""Shared fixtures: a small generated Fashion-MNIST stand-in, an isolated cache per test session."""

from __future__ import annotations

import gzip
import os
import re
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest


def write_idx(path: Path, arr: np.ndarray) -> None:
    """Write an unsigned-byte idx file (gzip-compressed when the name ends in .gz)."""
    header = bytes([0, 0, 0x08, arr.ndim]) + b"".join(int(d).to_bytes(4, "big") for d in arr.shape)
    data = header + np.ascontiguousarray(arr, dtype=np.uint8).tobytes()
    path.write_bytes(gzip.compress(data) if path.suffix == ".gz" else data)


def fake_items(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """28x28 'items' whose class is easy to see: a bar's thickness and place encode the label."""
    rng = np.random.default_rng(seed)
    labels = np.arange(n) % 10
    rng.shuffle(labels)
    items = np.zeros((n, 28, 28), np.uint8)
    for i, k in enumerate(labels):
        items[i, 2 + 2 * k : 5 + 2 * k, 3:25] = 255 if k % 2 == 0 else 180
        items[i, 3:25, 12:15] = 120 + 10 * k
    return items, labels.astype(np.uint8)


def make_fmnist_dir(folder: Path, n_train: int = 240, n_test: int = 120) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for split, n, seed in (("train", n_train, 1), ("t10k", n_test, 2)):
        items, labels = fake_items(n, seed)
        write_idx(folder / f"{split}-images-idx3-ubyte.gz", items)
        write_idx(folder / f"{split}-labels-idx1-ubyte.gz", labels)
    return folder


@pytest.fixture(scope="session")
def fmnist_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_fmnist_dir(tmp_path_factory.mktemp("fmnist"))


@pytest.fixture(scope="session", autouse=True)
def _isolated(fmnist_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """Tests see the generated Fashion-MNIST (never the real one), only this session's cache and
    no shipped weights."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("BENCH_FMNIST_DIR", str(fmnist_dir))
        mp.setenv("BENCH_CACHE", str(tmp_path_factory.getbasetemp() / "cache"))
        mp.setattr("bench.data.fmnist.DEBIAN_DIR", Path(os.devnull) / "absent")
        # the package's shipped weights fit the real Fashion-MNIST, not the generated one
        mp.setattr("bench.load.shipped.ROOT", tmp_path_factory.getbasetemp() / "shipped")
        mp.setattr("bench.evaluation.cell.measure", _quick_measure)
        yield


@pytest.fixture(scope="session")
def trained() -> None:
    """Tiny models trained once on the generated data (checkpoints in the session cache)."""

    assert (
        cli(
            "train mgnet_tiny resnet_tiny --data cluttered_fmnist --epochs 1 --batch-size 64 "
            "--if-missing"
        )
        == 0
    )


def _quick_measure(model, input_size, device, budget=1.0, max_batch=256, precision="fp32"):  # type: ignore[no-untyped-def]
    """The real timing code on a tiny budget, so tests stay fast (test_speed checks it in full)."""
    from bench.cost.speed import measure

    return measure(
        model,
        input_size,
        device,
        budget=min(budget, 0.02),
        max_batch=min(max_batch, 4),
        precision=precision,
    )


def cli(command: str, *values: object) -> int:
    """bench's exit status for a command line whose `{}` are `values` (a path with spaces stays one
    word)."""
    from bench.cli import main

    given = iter(values)
    return main([re.sub(r"\{\}", lambda _: str(next(given)), w) for w in command.split()])


def torchrun(ranks: int = 2) -> list[str]:
    """The start of a command line that runs `bench` on `ranks` CPU ranks under torchrun."""
    import sys

    run = [sys.executable, "-m", "torch.distributed.run", "--standalone"]
    return [*run, f"--nproc_per_node={ranks}", "-m", "bench.cli"]
