"""Hostile inputs: a broken model, a broken image or a failing worker gets one clear line, a nonzero
exit and nothing written; never silently wrong numbers."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest

from bench.core.errors import BenchError
from bench.data import cache_dir
from bench.store.results import read_rows
from tests.conftest import cli, torchrun

HEAD = """
import torch
import torch.nn as nn
from bench import register_model


def head(k):
    return nn.Sequential(nn.AdaptiveAvgPool2d(4), nn.Flatten(), nn.Linear(48, k))
"""
BROKEN = {
    # declares 10 classes, returns 7 logits: labels 7-9 could never be right
    "seven": """
@register_model("seven", num_classes=10, input_size=64, mean=None, std=None)
def seven():
    return head(7)
""",
    # NaN for every image
    "nan_all": """
class NaN(nn.Module):
    def __init__(self):
        super().__init__()
        self.head = head(10)

    def forward(self, x):
        return self.head(x) * float("nan")


@register_model("nan_all", num_classes=10, input_size=64, mean=None, std=None)
def nan_all():
    return NaN()
""",
    # NaN for the darker half of the images only
    "nan_some": """
class Some(nn.Module):
    def __init__(self):
        super().__init__()
        self.head = head(10)

    def forward(self, x):
        dark = x.mean((1, 2, 3)) < x.mean()
        return torch.where(dark[:, None], float("nan"), self.head(x))


@register_model("nan_some", num_classes=10, input_size=64, mean=None, std=None)
def nan_some():
    return Some()
""",
    # softmax last
    "probs": """
@register_model("probs", num_classes=10, input_size=64, mean=None, std=None)
def probs():
    return nn.Sequential(head(10), nn.Softmax(dim=1))
""",
    # integer outputs
    "ints": """
class Ints(nn.Module):
    def __init__(self):
        super().__init__()
        self.head = head(10)

    def forward(self, x):
        return (self.head(x) * 100).long()


@register_model("ints", num_classes=10, input_size=64, mean=None, std=None)
def ints():
    return Ints()
""",
}
SAYS = {
    "seven": "returns 7 logits per image but is registered with num_classes=10",
    "nan_all": "returns non-finite logits (NaN or Inf) for 16 of 16 probe images",
    "nan_some": "returns non-finite logits (NaN or Inf) for ",
    "probs": "returns probabilities at exit 1",
    "ints": "returns torch.int64 outputs; expected floating logits",
}


def _one_line(capsys: pytest.CaptureFixture[str], says: str) -> None:
    err = capsys.readouterr().err.strip()
    assert err.startswith("bench: error: ") and "\n" not in err and says in err, err


@pytest.mark.parametrize("name", sorted(BROKEN))
def test_a_model_that_breaks_the_contract_is_refused_before_anything_is_written(
    name: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    f = tmp_path / f"{name}.py"
    f.write_text(HEAD + BROKEN[name])
    out = tmp_path / "run"
    assert cli("run --suite clean --models {}@random --n-images 20 --out {}", f, out) == 2
    _one_line(capsys, SAYS[name])
    assert not out.exists()
    assert cli("train {} --epochs 1 --batch-size 64", f) == 2
    _one_line(capsys, SAYS[name])
    assert not list(cache_dir().glob(f"**/{name}.pt")), "no checkpoint written"


OFF_GRID_NAN = """
class OffGrid(nn.Module):
    # finite on images from uint8 pixels, NaN once an attack moves a pixel off that grid
    def __init__(self):
        super().__init__()
        self.head = head(10)

    def forward(self, x):
        off = ((x * 255 - (x * 255).round()).abs() > 1e-3).flatten(1).any(1)
        return torch.where(off[:, None], float("nan"), self.head(x))


@register_model("off_grid", num_classes=10, input_size=64, mean=None, std=None)
def off_grid():
    return OffGrid()
"""


def test_a_cell_whose_logits_turn_non_finite_stops_and_is_not_written(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    f = tmp_path / "off_grid.py"
    f.write_text(HEAD + OFF_GRID_NAN)
    out = tmp_path / "run"
    run = "run --suite smoke --models {}@random --n-images 8 --speed-budget 0 --out {} --no-report"
    assert cli(run, f, out) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("bench: error: off_grid ") and "\n" not in err, err
    assert "(strict): logits turned non-finite (NaN or Inf) for " in err, err
    assert err.endswith("; the cell is not written"), err
    failed = err.split()[3]  # the attack named in the line: fgsm or pgd
    rows = read_rows(out / "results.csv")
    assert {"clean", "corruption"} <= {r.kind for r in rows}, "cells before it are kept"
    assert not any(r.condition == failed for r in rows)


def test_a_loader_workers_error_is_the_main_process_line(tmp_path: Path) -> None:
    from bench.data import iter_batches, load_split
    from bench.data.imagenet import build
    from tests.test_data import _fake_imagenet

    _fake_imagenet(tmp_path / "in")
    root = build(tmp_path / "in", tmp_path / "in100")
    images = load_split("imagenet100", "test", root)
    Path(images.paths[5]).unlink()
    Path(images.paths[5]).write_bytes(b"")  # an empty file where an image should be
    idx = np.arange(12)
    said = []
    for workers in (0, 2):
        with pytest.raises(BenchError) as e:
            list(iter_batches(images, idx, 4, workers))
        said.append(str(e.value))
    assert said[0] == said[1] and "\n" not in said[1] and "cannot read image" in said[1]


def test_a_run_stopped_by_an_unreadable_image_leaves_no_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from bench.data import load_split, subset_indices
    from bench.data.imagenet import build
    from tests.test_data import _fake_imagenet

    _fake_imagenet(tmp_path / "in")
    root = build(tmp_path / "in", tmp_path / "in100")
    images = load_split("imagenet100", "test", root)
    probe, _ = subset_indices(len(images), 16)
    bad = next(i for i in subset_indices(len(images), 24)[0] if i not in probe)
    Path(images.paths[bad]).unlink()
    Path(images.paths[bad]).write_bytes(b"")  # read by a loader worker, after the probe
    out = tmp_path / "run" / "deep"  # --out a/b: both folders are new
    run = "run --models resnet18@random --data imagenet100 --data-root {} --n-images 24"
    assert cli(run + " --workers 2 --speed-budget 0 --out {}", root, out) == 2
    _one_line(capsys, "cannot read image")
    assert not (tmp_path / "run").exists(), "no data.json, lock or folder left"
    out = tmp_path / "run"
    out.mkdir()
    (out / "notes.txt").write_text("mine")
    assert cli(run + " --workers 2 --speed-budget 0 --out {}", root, out) == 2
    assert sorted(p.name for p in out.iterdir()) == ["notes.txt"], "a folder keeps only its own"


def test_a_corruption_workers_error_is_the_main_process_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from bench.corruptions import generate

    monkeypatch.setattr(generate, "WORKER_BYTES", 0)  # workers even for this little work
    images = np.zeros((4, 32, 32, 3), np.uint8)
    said = []
    for workers in (0, 2):
        assert generate.uses_workers(images, 2, workers) == (workers == 2)
        with pytest.raises(BenchError) as e:
            generate.prepare(
                images,
                np.arange(4),
                [("no_such", 1), ("fog", 1)],
                0,
                cache=tmp_path / str(workers),
                fingerprint="f",
                workers=workers,
            )
        said.append(str(e.value))
    assert said[0] == said[1] and "\n" not in said[1] and "no_such" in said[1]


GOOD = """
@register_model("plain_net", num_classes=10, input_size=64, mean=(0.5,) * 3, std=(0.25,) * 3)
def plain_net():
    return head(10)
"""


@pytest.mark.parametrize("kind", ["pt", "safetensors"])
def test_weights_trained_elsewhere_load_and_are_recorded_by_their_sha256(
    kind: str, tmp_path: Path, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A plain torch.save(state_dict) or safetensors file of the factory's module, no sidecar."""
    import hashlib

    import torch

    from bench.core.registry import MODELS
    from bench.load import specs

    monkeypatch.setattr(MODELS, "_items", dict(MODELS._items))  # this test's registrations only
    monkeypatch.setattr(specs, "_IMPORTED", {})
    f = tmp_path / "plain_net.py"
    f.write_text(HEAD + GOOD)
    specs.expand(str(f))
    torch.manual_seed(1)
    sd = MODELS.get("plain_net").build().state_dict()  # the user's module: keys without a wrapper
    w = tmp_path / f"mine.{kind}"
    if kind == "pt":
        torch.save(sd, w)
    else:
        from safetensors.torch import save_file

        save_file(sd, str(w))
    out = tmp_path / "run"
    assert cli("run --suite clean --models {}@{} --n-images 8 --out {}", f, w, out) == 0
    digest = hashlib.sha256(w.read_bytes()).hexdigest()
    [row] = read_rows(out / "results.csv")
    assert row.weights == f"file:{digest[:12]}"
    said = [
        r.getMessage() for r in caplog.records if "was not made by `bench train`" in r.getMessage()
    ]
    assert len(said) == 1 and digest in said[0], "said once, with the file's sha256"


def _project(root: Path) -> Path:
    """A model developer's project whose packages are named like ours."""
    for pkg in ("models", "attacks", "corruptions"):
        (root / pkg).mkdir(parents=True)
        (root / pkg / "__init__.py").write_text("")
    (root / "models" / "net.py").write_text(HEAD.replace("from bench import register_model\n", ""))
    (root / "my_model.py").write_text(
        "from bench import register_model\nfrom models.net import head\n\n\n"
        '@register_model("project_net", num_classes=10, input_size=64, mean=None, std=None)\n'
        "def project_net():\n    return head(10)\n"
    )
    return root


def test_a_project_with_packages_named_like_ours_works(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Its model file imports its own `models`; `python -m bench.cli` from it sees our models."""
    import subprocess
    import sys

    from bench.core.registry import MODELS
    from bench.load import specs

    monkeypatch.setattr(MODELS, "_items", dict(MODELS._items))
    monkeypatch.setattr(specs, "_IMPORTED", {})
    root = _project(tmp_path / "proj")
    monkeypatch.chdir(root)
    assert (
        cli("run --suite clean --models my_model.py@random --n-images 4 --out {}", root / "r") == 0
    )
    assert [r.model for r in read_rows(root / "r" / "results.csv")] == ["project_net"]
    listed = subprocess.run(
        [sys.executable, "-m", "bench.cli", "models"], cwd=root, capture_output=True, text=True
    )
    assert listed.returncode == 0 and "mgnet_small" in listed.stdout, listed.stderr[-500:]


def test_a_model_file_importing_its_own_bench_package_gets_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    f = tmp_path / "uses_bench.py"
    f.write_text("from bench.utils import helper\n")
    assert cli("run --models {} --out {}", f, tmp_path / "r") == 2
    _one_line(capsys, "it imports bench.utils, but `bench` is this suite's package; rename your")


def test_n_images_above_a_suites_sizes_is_said(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    out = tmp_path / "run"
    run = "run --suite smoke --models resnet_tiny@random --n-images 64 --speed-budget 0 --out {}"
    assert cli(run + " --no-report", out) == 0
    assert {r.n_images for r in read_rows(out / "results.csv")} == {16}
    said = [r.getMessage() for r in caplog.records if "--n-images 64" in r.getMessage()]
    assert said == [
        "--n-images 64 only lowers the smoke suite's sizes: its clean, fgsm, fog, pgd cells run "
        "on 16 image(s)"
    ]


def test_under_torchrun_a_rank_whose_logits_turn_non_finite_stops_every_rank(
    tmp_path: Path,
) -> None:
    """No rank is left waiting in a gather: each ends with one line, the cell is not written."""
    import os
    import subprocess

    f = tmp_path / "off_grid.py"
    f.write_text(HEAD + OFF_GRID_NAN)
    out = tmp_path / "run"
    args = f"run --suite smoke --models {f}@random --n-images 8 --batch-size 4 --speed-budget 0"
    done = subprocess.run(
        [*torchrun(), *args.split(), "--no-report", "--out", str(out)],
        env={**os.environ, "OMP_NUM_THREADS": "1"},
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert done.returncode != 0
    ours = [ln for ln in done.stderr.splitlines() if "bench: error:" in ln]
    assert len(ours) == 2, done.stderr[-3000:]  # one line per rank
    assert all("logits turned non-finite" in ln for ln in ours), ours
    failed = re.search(r"off_grid (\w+) linf", ours[0]).group(1)  # type: ignore[union-attr]
    rows = read_rows(out / "results.csv")
    assert {"clean", "corruption"} <= {r.kind for r in rows}
    assert not any(r.condition == failed for r in rows)


@pytest.mark.parametrize(
    "argv", [[], ["run", "--models"], ["run", "--models", "-x"], ["run", "--bogus"], ["nope"]]
)
def test_usage_errors_are_one_line(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    from bench.cli import main

    assert main(argv) == 2
    _one_line(capsys, "--help` shows the options")


def test_a_run_refused_the_lock_leaves_the_holders_files(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Another run holds the folder and has written to it: a second run into it is refused and
    removes nothing, neither the holder's files nor its lock."""
    from bench.evaluation import folder_lock

    out = tmp_path / "a" / "b"
    run = "run --suite clean --models resnet_tiny@random --n-images 4 --out {}"
    out.mkdir(parents=True)
    with folder_lock.hold(out):
        (out / "data.json").write_text("{}")  # the holder's, written after this run started
        assert cli(run, out) == 2
        _one_line(capsys, "another bench run is writing to")
        assert (out / "data.json").is_file() and (out / folder_lock.LOCK).is_file()
    assert not (out / folder_lock.LOCK).exists(), "the holder removes its lock when it ends"


def test_a_bench_checkpoint_that_lost_its_sidecar_is_refused(
    trained: None, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Not taken for weights trained elsewhere: its sha256 can no longer be checked."""
    import shutil

    from bench.load.specs import default_checkpoint

    ckpt = tmp_path / "copied.pt"
    shutil.copy(default_checkpoint(cache_dir(), "cluttered_fmnist", "resnet_tiny"), ckpt)
    assert cli("run --suite clean --models resnet_tiny@{} --out {}", ckpt, tmp_path / "r") == 2
    _one_line(capsys, "copied.pt has no sidecar copied.json: cannot verify it")
