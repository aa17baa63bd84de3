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

from bench.devices import distributed
from bench.evaluation.correct import Correct, merge
from tests.conftest import torchrun

TIMING = {"seconds", "created", "latency_ms", "throughput", "throughput_batch", "device", "code"}


def _table(path: Path, drop: set[str]) -> list[tuple[str, ...]]:
    with path.open(newline="") as f:
        rows = list(csv.reader(f))
    keep = [i for i, c in enumerate(rows[0]) if c not in drop]
    return [tuple(r[i] for i in keep) for r in rows]


# A stand-in for kernels chosen by batch shape (oneDNN, cuDNN): each image's logits move with its
# batch companions, so the rows match a single process's only if every rank evaluates the very
# batches one process would.
BATCH_BOUND_NET = (
    "import torch.nn as nn\nfrom bench import register_model\n\nclass BatchBound(nn.Module):\n    "
    "def __init__(self) -> None:\n        super().__init__()\n        self.net = "
    "nn.Sequential(nn.Conv2d(3, 8, 5, 4, 2), nn.ReLU(), nn.AdaptiveAvgPool2d(4), nn.Flatten(),\n   "
    "                              nn.Linear(128, 10))\n\n    def forward(self, x):\n        z = "
    "self.net(x)\n        return z + 3 * z.mean(0, keepdim=True)\n\n@register_model('batch_bound', "
    "num_classes=10, input_size=64, mean=(0.5,) * 3, std=(0.25,) * 3)\ndef batch_bound() -> "
    "nn.Module:\n    return BatchBound()\n"
)


def test_torchrun_two_cpu_ranks_write_the_single_process_csv(tmp_path: Path) -> None:
    (tmp_path / "batch_bound.py").write_text(BATCH_BOUND_NET)
    args = [
        *"run --suite smoke --models mgnet_tiny@random resnet_tiny@random".split(),
        f"{tmp_path / 'batch_bound.py'}@random",
        *"--n-images 7 --batch-size 3 --speed-budget 0".split(),
    ]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    one = subprocess.run(
        [sys.executable, "-m", "bench.cli", *args, "--no-report", "--out", str(tmp_path / "one")],
        env=env,
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert one.returncode == 0, one.stderr[-2000:]
    stale = _plant_stale_states(tmp_path / "one" / "results.csv", tmp_path / "two")
    two = subprocess.run(
        [*torchrun(), *args, "--out", str(tmp_path / "two")],
        env=env,
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert two.returncode == 0, two.stderr[-3000:]
    assert two.stdout.count("results:") == 1  # rank 0 reports
    a, b = (
        _table(tmp_path / "one" / "results.csv", TIMING),
        _table(tmp_path / "two" / "results.csv", TIMING),
    )
    assert len(a) > 1 and a == b
    for name in ("per_image.csv", "glimpses.csv"):
        assert (tmp_path / "one" / name).read_text() == (tmp_path / "two" / name).read_text()
    assert _table(tmp_path / "one" / "checks.csv", {"created"}) == _table(
        tmp_path / "two" / "checks.csv", {"created"}
    )
    assert (tmp_path / "two" / "report.html").is_file()
    assert stale and not any(f.exists() for f in stale), (
        "rank 0 removes a finished cell's state of every world size"
    )
    assert not list((tmp_path / "two").glob(".state/*"))


def _plant_stale_states(results: Path, out: Path) -> list[Path]:
    """Per-rank states an interrupted 4-rank launch leaves for each cell of `results` in `out`."""
    from bench.evaluation.state import state_path
    from bench.store.results import KEY_FIELDS, read_rows

    first: dict[tuple, dict] = {}
    for r in read_rows(results):  # a cell's state is named by its first exit's key
        key = {f: getattr(r, f) for f in KEY_FIELDS}
        cell = tuple(v for f, v in key.items() if f != "exit")
        if cell not in first or key["exit"] < first[cell]["exit"]:
            first[cell] = key
    files = []
    for key in first.values():
        base = state_path(out, key)
        files += [base.with_name(f"{base.name}-rank{r}of4-exit{key['exit']}.json") for r in (1, 3)]
    for f in files:
        f.parent.mkdir(parents=True, exist_ok=True)
        f.write_text("{}")
    return files


def test_ranks_evaluate_the_batches_of_one_process(monkeypatch: pytest.MonkeyPatch) -> None:
    """Ranks take whole chunks, so their chunk-size batches are one process's, each image once."""
    from bench.data import ArrayImageSet, iter_batches

    for n, chunk in ((10, 4), (12, 3), (7, 3), (1, 5), (9, 1)):
        images = ArrayImageSet(
            "toy", "test", ("a",), np.zeros((n, 2, 2, 3), np.uint8), np.zeros(n, np.int64)
        )
        alone = [tuple(idx) for idx, _, _ in iter_batches(images, np.arange(n), chunk)]
        for size in (1, 2, 3, 4):
            batches = []
            for rank in range(size):
                monkeypatch.setattr(
                    distributed, "world", lambda r=rank, s=size: distributed.World(r, s, r)
                )
                pos, ids = distributed.shard(n, chunk)
                assert ids == list(range(rank, -(-n // chunk), size))
                batches += [tuple(idx) for idx, _, _ in iter_batches(images, pos, chunk)]
            assert sorted(batches) == sorted(alone), (n, chunk, size)


def test_a_cell_of_fewer_batches_than_ranks_says_why_ranks_wait() -> None:
    from bench.evaluation.cell import idle_ranks

    assert idle_ranks(200, 256, 4) == (
        "200 image(s) are 1 batch(es) of 256 for 4 ranks, so 3 wait (ranks take whole batches, "
        "which keeps the rows equal to one process's; a smaller --batch-size spreads small cells)"
    )
    assert idle_ranks(200, 50, 4) == "" and idle_ranks(7, 3, 2) == ""
    assert idle_ranks(7, 100, 2, autoattack=True).endswith(
        "AutoAttack's chunks are the suite's, which seed them, not --batch-size)"
    )


def test_merge_puts_each_share_back_in_place() -> None:
    idx = np.array([5, 9, 2, 7])

    def share(pos: list[int], correct: list[bool], seconds: float, notes: tuple) -> tuple:  # type: ignore[type-arg]
        one = np.array([1])
        return np.array(pos), Correct(idx[pos], np.array([correct]), seconds, one * 2, one, notes)

    parts = [
        share([0, 2], [True, False], 1.0, ((1, "a"),)),
        share([1, 3], [False, True], 3.0, ((1, "a"), (1, "b"))),
        (np.zeros(0, dtype=np.int64), None),
    ]
    c = merge(parts, idx, 1)
    assert c.correct.tolist() == [[True, False, False, True]] and c.seconds == 3.0
    assert (
        c.n_forward.tolist() == [4] and c.notes == ((1, "a"), (1, "b")) and (c.index == idx).all()
    )


def test_autoattack_chunks_on_two_ranks_match_one_process(monkeypatch: pytest.MonkeyPatch) -> None:
    """Same flags, same passes counted (the class-count probe is no pass; the library's input checks
    run once, on chunk 0, as in one process) and the same counts for the Square check."""
    from bench.attacks import AutoAttack, PassCounter
    from bench.attacks.autoattack import Flags
    from tests.test_attacks import _five_class, few_square_queries

    few_square_queries(monkeypatch)

    model, x, y = _five_class()
    # one image that survives to Square per share
    order = torch.tensor([0, 1, 2, 3, 8, 5, 6, 7, 4, 9, 10, 11])
    x, y = x[order], y[order]
    atk = AutoAttack(6 / 255)
    one, one_flags = PassCounter(model), Flags()
    full = atk.robust(one, x, y, seed=3, batch_size=4, chunk_ids=[0, 1, 2], flags=one_flags)
    assert one_flags.robust_after == {
        "clean": 12,
        "apgd-ce": 4,
        "apgd-t": 2,
        "fab-t": 2,
        "square": 2,
    }
    assert full[:4].any() and full[4:8].any()  # the attacks ran to the end on both shares
    shares = {0: [0, 2], 1: [1]}  # 12 images, chunks of 4
    got = torch.zeros_like(full)
    forward, after = 0, {}
    for ids in shares.values():
        pos = torch.cat([torch.arange(c * 4, c * 4 + 4) for c in ids])
        counter, flags = PassCounter(model), Flags()
        got[pos] = atk.robust(
            counter, x[pos], y[pos], seed=3, batch_size=4, chunk_ids=ids, flags=flags
        )
        forward += counter.n_forward
        after = {k: after.get(k, 0) + v for k, v in flags.robust_after.items()}
    assert torch.equal(got, full)
    assert forward == one.n_forward and after == one_flags.robust_after


def test_the_square_check_judges_the_whole_cell() -> None:
    """pyautoattack flags Square breaking more than 0.2 % of the images the white-box attacks left:
    one image of 1,000 is not that, though it is 0.4 % of a 250-image share."""
    idx = np.arange(1000)

    def share(k: int, square_broke: int) -> tuple[np.ndarray, Correct]:
        counts = (("clean", 200), ("apgd-ce", 100), ("square", 100 - square_broke))
        pos = idx[k * 250 : (k + 1) * 250]
        return pos, Correct(
            pos,
            np.zeros((1, 250), bool),
            1.0,
            np.array([0]),
            np.array([0]),
            robust_after=tuple((1, n, c) for n, c in counts),
        )

    quiet = merge([share(0, 1), share(1, 0), share(2, 0), share(3, 0)], idx, 1)
    assert quiet.notes == () and dict((n, c) for _, n, c in quiet.robust_after)["square"] == 399
    loud = merge([share(0, 1), share(1, 1), share(2, 1), share(3, 0)], idx, 1)
    assert (
        len(loud.notes) == 1
        and "Square Attack has decreased the robust accuracy of 0.30%" in loud.notes[0][1]
    )


FLAT_NET = (
    "import torch.nn as nn\nfrom bench import register_model\n\n@register_model('flat_net', "
    "num_classes=10, input_size=64, mean=(0.5,) * 3, std=(0.25,) * 3)\ndef flat_net() -> "
    "nn.Module:\n    return nn.Sequential(nn.Conv2d(3, 8, 5, 4, 2), nn.ReLU(), "
    "nn.AdaptiveAvgPool2d(4), nn.Flatten(),\n                         nn.Linear(128, 10))\n"
)


def _train(where: Path, ranks: int, models: list[str]) -> Path:
    """`bench train`, 1 epoch at batch 63, own cache, torchrun if ranks > 1; returns the cache."""
    env = {**os.environ, "OMP_NUM_THREADS": "1", "BENCH_CACHE": str(where / "cache")}
    launcher = torchrun(ranks) if ranks > 1 else [sys.executable, "-m", "bench.cli"]
    # batch 63 of 240 images: shares of 32 and 31 images (26 and 25 in the last batch) weigh each
    # image alike
    res = subprocess.run(
        [*launcher, "train", *models, "--epochs", "1", "--batch-size", "63"],
        env=env,
        cwd=where,
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert res.returncode == 0, res.stderr[-3000:]
    assert res.stdout.count("test accuracy") == len(models)  # rank 0 reports
    return where / "cache" / "checkpoints" / "cluttered_fmnist"


@pytest.fixture(scope="module")
def ddp_trained(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One torchrun launch on 2 CPU ranks trains both models the DDP tests look at."""
    where = tmp_path_factory.mktemp("ddp")
    (where / "flat_net.py").write_text(FLAT_NET)
    return _train(where, 2, [str(where / "flat_net.py"), "mgbase_tiny"])


def test_torchrun_ddp_training_matches_one_process_without_batchnorm(
    ddp_trained: Path, tmp_path: Path
) -> None:
    """No batch stats, so uneven shares' averaged gradients equal the full batch's: same weights."""
    from bench.load import checkpoint

    (tmp_path / "flat_net.py").write_text(FLAT_NET)
    one, meta_one, _ = checkpoint.load(
        _train(tmp_path, 1, [str(tmp_path / "flat_net.py")]) / "flat_net.pt"
    )
    two, meta_two, _ = checkpoint.load(ddp_trained / "flat_net.pt")
    assert (meta_one["world_size"], meta_two["world_size"]) == (1, 2)
    for k, v in one.items():
        assert torch.allclose(v, two[k], atol=1e-5, rtol=1e-4), k


def test_a_setup_error_on_one_rank_stops_every_rank(monkeypatch: pytest.MonkeyPatch) -> None:
    """A file one rank cannot read fails every rank, instead of a 2-hour wait at the next barrier.

    That rank (say, the file is on another node's disk) fails with its own error, the others with
    one naming it; none waits for the process group's timeout.
    """
    from bench.core.errors import BenchError

    def fails() -> int:
        raise BenchError("imagenet100 needs --data-root")

    monkeypatch.setattr(distributed, "world", lambda: distributed.World(1, 2, 1))
    monkeypatch.setattr(distributed, "gather", lambda obj: ["", obj])
    with pytest.raises(BenchError, match="^imagenet100 needs --data-root$"):
        distributed.together(fails)
    monkeypatch.setattr(distributed, "world", lambda: distributed.World(0, 2, 0))
    monkeypatch.setattr(distributed, "gather", lambda obj: [obj, "imagenet100 needs --data-root"])
    with pytest.raises(BenchError, match="^rank 1 failed: imagenet100 needs --data-root$"):
        distributed.together(lambda: 5)
    monkeypatch.setattr(distributed, "gather", lambda obj: [obj, ""])
    assert distributed.together(lambda: 5) == 5
    monkeypatch.setattr(distributed, "world", lambda: distributed.World(1, 2, 1))
    told: list[str] = []
    monkeypatch.setattr(distributed, "gather", lambda obj: told.append(obj) or ["", obj])

    def leaves() -> int:
        raise SystemExit(3)

    with pytest.raises(SystemExit):  # an exit too is told to the other ranks before it is raised
        distributed.together(leaves)
    assert told == ["3"]


def test_a_batch_smaller_than_the_world_is_refused_by_every_rank_before_any_collective(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """The check uses what every rank knows (batch size, data size), so each rank raises, none waits
    in DDP; here rank 1 of 2 without any process group: a collective would fail with another error.
    """
    from bench.core.errors import BenchError
    from bench.load.specs import load
    from bench.train import Recipe, train

    images = _black(240)
    model = load("resnet_tiny@random", "cluttered_fmnist", tmp_path).model
    for rank in (0, 1):
        monkeypatch.setattr(distributed, "world", lambda r=rank: distributed.World(r, 2, r))
        with pytest.raises(
            BenchError, match=r"a batch of 1 image\(s\) .* cannot be shared among 2 ranks"
        ):
            train(
                model,
                "resnet_tiny",
                images,
                images,
                Recipe(epochs=1, batch_size=239, lr=0.1),
                tmp_path / "m.pt",
            )
    assert not list(tmp_path.glob("*.pt"))


def test_training_refuses_a_one_image_batch_for_batch_norm_or_an_unwritable_folder_at_once(
    tmp_path: Path,
) -> None:
    """MGNet's batch norms on 1x1 maps cannot train on one image; both errors come before step 1."""
    from bench.core.errors import BenchError
    from bench.load.specs import load
    from bench.train import Recipe, train

    images = _black(240)
    model = load("mgnet_tiny@random", "cluttered_fmnist", tmp_path).model
    with pytest.raises(
        BenchError, match=r"a batch of 1 image\(s\) .* leaves a rank one image, on which batch norm"
    ):
        train(
            model,
            "mgnet_tiny",
            images,
            images,
            Recipe(epochs=1, batch_size=239, lr=0.1),
            tmp_path / "m.pt",
        )
    (tmp_path / "file").write_text("")
    with pytest.raises(BenchError, match="cannot write checkpoints to"):
        train(
            model,
            "mgnet_tiny",
            images,
            images,
            Recipe(epochs=1, batch_size=60, lr=0.1),
            tmp_path / "file" / "m.pt",
        )
    assert not list(tmp_path.glob("*.pt"))


def test_the_training_seed_also_seeds_the_initial_weights(tmp_path: Path) -> None:
    from bench.load.specs import load

    def weights(seed: int) -> torch.Tensor:
        return load(
            "resnet_tiny@random", "cluttered_fmnist", tmp_path, init_seed=seed
        ).model.state_dict()

    zero, again, one = weights(0), weights(0), weights(1)
    assert all(torch.equal(zero[k], again[k]) for k in zero)
    assert not all(torch.equal(zero[k], one[k]) for k in zero if zero[k].is_floating_point())


def test_torchrun_ddp_trains_the_one_glimpse_baseline(ddp_trained: Path, tmp_path: Path) -> None:
    """mgbase never runs its localization network: frozen, so DDP waits for no gradient of it (it
    failed at the second step before) and it keeps its initial weights, as in one process."""
    from bench.load import checkpoint
    from bench.load.specs import load

    sd, meta, _ = checkpoint.load(ddp_trained / "mgbase_tiny.pt")
    init = load("mgbase_tiny@random", "cluttered_fmnist", tmp_path).model.state_dict()
    assert meta["world_size"] == 2
    assert all(torch.equal(v, init[k]) for k, v in sd.items() if k.startswith("loc_network."))
    assert not all(torch.equal(v, init[k]) for k, v in sd.items() if k.startswith("global_fc."))


def _black(n: int) -> object:
    """n black 64-px training images of 10 classes."""
    from bench.data import ArrayImageSet

    return ArrayImageSet(
        "toy", "train", tuple("abcdefghij"), np.zeros((n, 64, 64, 3), np.uint8), np.arange(n) % 10
    )
