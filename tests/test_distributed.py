"""torchrun: ranks share each cell's images and the gathered CSV equals a single-process run's."""
from __future__ import annotations

import csv
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from bench import distributed
from bench.evaluate import Correct, merge

TIMING = {"seconds", "created", "latency_ms", "throughput", "throughput_batch", "device", "code"}


def _table(path: Path, drop: set[str]) -> list[tuple[str, ...]]:
    with path.open(newline="") as f:
        rows = list(csv.reader(f))
    keep = [i for i, c in enumerate(rows[0]) if c not in drop]
    return [tuple(r[i] for i in keep) for r in rows]


def test_torchrun_two_cpu_ranks_write_the_single_process_csv(tmp_path: Path) -> None:
    args = ["run", "--suite", "smoke", "--models", "mgnet_tiny@random", "resnet_tiny@random", "--n-images", "7",
            "--batch-size", "3", "--speed-budget", "0"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    one = subprocess.run([sys.executable, "-m", "bench.cli", *args, "--out", str(tmp_path / "one")],
                         env=env, capture_output=True, text=True, timeout=240)
    assert one.returncode == 0, one.stderr[-2000:]
    two = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
                          "-m", "bench.cli", *args, "--out", str(tmp_path / "two")],
                         env=env, capture_output=True, text=True, timeout=240)
    assert two.returncode == 0, two.stderr[-3000:]
    assert two.stdout.count("results:") == 1  # rank 0 reports
    a, b = _table(tmp_path / "one" / "results.csv", TIMING), _table(tmp_path / "two" / "results.csv", TIMING)
    assert len(a) > 1 and a == b
    for name in ("per_image.csv", "glimpses.csv"):
        assert (tmp_path / "one" / name).read_text() == (tmp_path / "two" / name).read_text()
    assert _table(tmp_path / "one" / "checks.csv", {"created"}) == _table(tmp_path / "two" / "checks.csv", {"created"})
    assert (tmp_path / "two" / "report.html").is_file() and not list((tmp_path / "two").glob(".state/*"))


def test_shards_cover_every_image_once(monkeypatch: pytest.MonkeyPatch) -> None:
    for size in (1, 2, 3):
        images, chunks = [], []
        for rank in range(size):
            monkeypatch.setattr(distributed, "world", lambda r=rank, s=size: distributed.World(r, s, r))
            pos, _ = distributed.shard(10)
            cpos, ids = distributed.shard(10, chunk=4)
            images += list(pos)
            chunks += list(cpos)
            assert ids == list(range(rank, 3, size))
            assert all(list(cpos[i * 4:(i + 1) * 4]) == list(range(c * 4, min(c * 4 + 4, 10))) for i, c in enumerate(ids))
        assert sorted(images) == list(range(10)) and sorted(chunks) == list(range(10))


def test_merge_puts_each_share_back_in_place() -> None:
    idx = np.array([5, 9, 2, 7])
    parts = [(np.array([0, 2]), Correct(idx[[0, 2]], np.array([[True, False]]), 1.0, np.array([2]), np.array([1]),
                                        ((1, "a"),))),
             (np.array([1, 3]), Correct(idx[[1, 3]], np.array([[False, True]]), 3.0, np.array([2]), np.array([1]),
                                        ((1, "a"), (1, "b")))),
             (np.zeros(0, dtype=np.int64), None)]
    c = merge(parts, idx, 1)
    assert c.correct.tolist() == [[True, False, False, True]] and c.seconds == 3.0
    assert c.n_forward.tolist() == [4] and c.notes == ((1, "a"), (1, "b")) and (c.index == idx).all()


def test_autoattack_chunks_on_two_ranks_match_one_process() -> None:
    from attacks import AutoAttack
    from tests.test_attacks import _five_class

    model, x, y = _five_class()
    atk = AutoAttack(4 / 255)
    full = atk.robust(model, x, y, seed=3, batch_size=4)
    assert 0 < int(full.sum()) < len(full)  # the attacks changed some flags and not others
    shares = {0: [0, 2], 1: [1]}  # 12 images, chunks of 4
    got = torch.zeros_like(full)
    for ids in shares.values():
        pos = torch.cat([torch.arange(c * 4, c * 4 + 4) for c in ids])
        got[pos] = atk.robust(model, x[pos], y[pos], seed=3, batch_size=4, chunk_ids=ids)
    assert torch.equal(got, full)


def test_torchrun_ddp_training_matches_one_process_without_batchnorm(tmp_path: Path) -> None:
    """With equal shares and no batch statistics, averaged gradients equal the full batch's: same weights."""
    from bench import checkpoint

    (tmp_path / "flat_net.py").write_text(
        "import torch.nn as nn\nfrom bench import register_model\n\n"
        "@register_model('flat_net', num_classes=10, input_size=64, mean=(0.5,) * 3, std=(0.25,) * 3)\n"
        "def flat_net() -> nn.Module:\n"
        "    return nn.Sequential(nn.Conv2d(3, 8, 5, 4, 2), nn.ReLU(), nn.AdaptiveAvgPool2d(4), nn.Flatten(),\n"
        "                         nn.Linear(128, 10))\n")
    weights = {}
    for ranks in (1, 2):
        env = {**os.environ, "OMP_NUM_THREADS": "1", "BENCH_CACHE": str(tmp_path / f"cache{ranks}")}
        launcher = ["-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={ranks}"] if ranks > 1 else []
        res = subprocess.run([sys.executable, *launcher, "-m", "bench.cli", "train", str(tmp_path / "flat_net.py"),
                              "--epochs", "1", "--batch-size", "64"], env=env, cwd=tmp_path, capture_output=True,
                             text=True, timeout=240)
        assert res.returncode == 0, res.stderr[-3000:]
        assert res.stdout.count("test accuracy") == 1
        path = tmp_path / f"cache{ranks}" / "checkpoints" / "cluttered_fmnist" / "flat_net.pt"
        sd, meta, _ = checkpoint.load(path)
        assert meta["world_size"] == ranks
        weights[ranks] = sd
    for k, v in weights[1].items():
        assert torch.allclose(v, weights[2][k], atol=1e-4, rtol=1e-3), k
