"""Data: idx parsing, the cluttered default set, the ImageNet100 builder and loader."""

from __future__ import annotations

import gzip
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from bench.core.errors import BenchError
from bench.data import cluttered, fmnist, imagenet, load_split, subset_indices
from tests.conftest import write_idx


def test_idx_round_trip_and_damaged_files(tmp_path: Path) -> None:
    arr = np.arange(2 * 3 * 4, dtype=np.uint8).reshape(2, 3, 4)
    write_idx(tmp_path / "a.gz", arr)
    assert np.array_equal(fmnist.read_idx(tmp_path / "a.gz"), arr)
    raw = (tmp_path / "b").write_bytes(bytes([0, 0, 8, 1, 0, 0, 0, 9, 1, 2]))  # says 9, holds 2
    assert raw
    with pytest.raises(BenchError, match="truncated"):
        fmnist.read_idx(tmp_path / "b")
    (tmp_path / "c.gz").write_bytes(b"not gzip")
    with pytest.raises(BenchError, match="cannot read"):
        fmnist.read_idx(tmp_path / "c.gz")
    (tmp_path / "d").mkdir()
    (tmp_path / "d" / fmnist.FILES["test"][0]).write_bytes(b"not gzip")
    with pytest.raises(BenchError, match="cannot read"):
        fmnist.count("test", tmp_path / "d")
    write_idx(tmp_path / "d" / fmnist.FILES["test"][0], np.zeros((5, 2), np.uint16).view(np.uint8))
    assert fmnist.count("test", tmp_path / "d") == 5
    (tmp_path / "d" / fmnist.FILES["test"][0]).write_bytes(
        gzip.compress(b"\x00\x00\x0d\x01\x00\x00\x00\x05")
    )
    with pytest.raises(BenchError, match="not an unsigned-byte idx file"):
        fmnist.count("test", tmp_path / "d")


def test_missing_fashion_mnist_says_how_to_get_it(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("BENCH_FMNIST_DIR", str(tmp_path / "empty"))
    with pytest.raises(BenchError, match="apt-get install dataset-fashion-mnist"):
        load_split("cluttered_fmnist", "test")


def test_cluttered_images_are_deterministic_and_independent_of_count(fmnist_dir: Path) -> None:
    items, _ = fmnist.load("test", fmnist_dir)
    spec = cluttered.ClutterSpec()
    a = cluttered.build("test", cluttered.ClutterSpec(n_test=50), fmnist_dir)
    b = cluttered.build("test", cluttered.ClutterSpec(n_test=20), fmnist_dir)
    assert a.images.shape == (50, 64, 64, 3) and a.images.dtype == np.uint8
    assert np.array_equal(a.images[:20], b.images)
    assert np.array_equal(cluttered.render(items, 7, 1, spec), a.images[7])
    assert not np.array_equal(cluttered.render(items, 7, 0, spec), a.images[7]), (
        "splits must differ"
    )
    assert a.classes == fmnist.CLASSES and np.array_equal(
        a.labels, fmnist.load("test", fmnist_dir)[1][:50]
    )


def test_the_object_box_holds_every_pixel_the_item_changes() -> None:
    """Rendering item i as a blank changes nothing outside object_box (the pixels the item covers)
    and something inside it."""
    from tests.conftest import fake_items

    items, _ = fake_items(1000, 3)
    spec = cluttered.ClutterSpec()
    for i in range(0, 1000, 50):
        blank = items.copy()
        blank[i] = 0
        changed = np.any(
            cluttered.render(items, i, 1, spec) != cluttered.render(blank, i, 1, spec), axis=-1
        )
        x0, y0, x1, y1 = (round(v * spec.canvas) for v in cluttered.object_box(items, i, 1, spec))
        inside = np.zeros_like(changed)
        inside[y0:y1, x0:x1] = True
        assert changed.any() and not (changed & ~inside).any(), i
        assert x1 - x0 <= spec.item_max and y1 - y0 <= spec.item_max


def test_cluttered_cache_is_used_and_a_damaged_entry_rebuilt(
    fmnist_dir: Path, tmp_path: Path
) -> None:
    spec = cluttered.ClutterSpec(n_test=10)
    first = cluttered.build("test", spec, fmnist_dir, tmp_path)
    (entry,) = tmp_path.glob("*.npz")
    assert np.array_equal(cluttered.build("test", spec, fmnist_dir, tmp_path).images, first.images)
    good = entry.read_bytes()
    flipped = bytearray(good)
    flipped[len(good) // 2] ^= 0xFF
    # numpy: ValueError, BadZipFile, EOFError
    for damaged in (b"garbage", good[: len(good) // 2], bytes(flipped), b""):
        entry.write_bytes(damaged)
        assert np.array_equal(
            cluttered.build("test", spec, fmnist_dir, tmp_path).images, first.images
        )
    (tmp_path / "file").write_text("")  # an unwritable cache: built, not cached, not a failure
    assert np.array_equal(
        cluttered.build("test", spec, fmnist_dir, tmp_path / "file" / "c").images, first.images
    )


def test_a_cached_build_reads_no_images_and_a_parallel_build_renders_the_same(
    fmnist_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    spec = cluttered.ClutterSpec(n_test=30)
    monkeypatch.setattr(cluttered, "PARALLEL_FROM", 0)  # 30 images in 2 worker processes
    parallel = cluttered.build("test", spec, fmnist_dir, tmp_path, workers=2)
    assert np.array_equal(
        parallel.images, cluttered.build("test", spec, fmnist_dir, workers=1).images
    )

    def no_read(*_: object) -> None:
        raise AssertionError("the cached split was rebuilt")

    monkeypatch.setattr(fmnist, "load", no_read)
    assert np.array_equal(
        cluttered.build("test", spec, fmnist_dir, tmp_path).images, parallel.images
    )
    assert fmnist.count("test", fmnist_dir) == 120


def test_cluttered_cache_is_keyed_by_the_source_files(fmnist_dir: Path, tmp_path: Path) -> None:
    spec = cluttered.ClutterSpec(n_test=10)
    first = cluttered.build("test", spec, fmnist_dir, tmp_path / "cache")
    other = tmp_path / "other"
    shutil.copytree(fmnist_dir, other)
    images, _ = fmnist.load("test", fmnist_dir)
    # another copy of Fashion-MNIST, same counts
    write_idx(other / fmnist.FILES["test"][0], 255 - images)
    again = cluttered.build("test", spec, other, tmp_path / "cache")
    assert not np.array_equal(again.images, first.images), (
        "a build from other source files reused the cache"
    )
    assert np.array_equal(again.images, cluttered.build("test", spec, other).images)
    assert len(list((tmp_path / "cache").glob("*.npz"))) == 2


def test_subset_is_a_fixed_permutation_prefix() -> None:
    idx, label = subset_indices(100, 10)
    assert label == "perm0:10" and len(idx) == 10 and np.array_equal(idx, np.sort(idx))
    assert set(idx) < set(subset_indices(100, 20)[0])
    assert subset_indices(100, None)[1] == "all" and subset_indices(100, 500)[1] == "all"


def test_imagenet100_class_list() -> None:
    ids = imagenet.wnids()
    assert (
        len(ids) == 100
        and ids[0] == "n01440764"
        and ids[-1] == "n01855672"
        and "n01860187" not in ids
    )


def _fake_imagenet(root: Path, skip: str | None = None, per_class: int = 1) -> None:
    for split in ("train", "val"):
        for k, w in enumerate(imagenet.wnids() + ("n01860187",)):
            if w == skip:
                continue
            d = root / split / w
            d.mkdir(parents=True)
            for j in range(per_class):
                Image.new("RGB", (300, 260), (k, j, 0)).save(d / f"{w}_{j}.JPEG")


def test_imagenet100_builder_refuses_missing_classes(tmp_path: Path) -> None:
    _fake_imagenet(tmp_path / "in", skip="n01530575")
    with pytest.raises(BenchError, match="1 of 100 class folders missing.*n01530575"):
        imagenet.build(tmp_path / "in", tmp_path / "in100")
    assert not (tmp_path / "in100").exists()


def test_imagenet100_build_load_and_preprocessing(tmp_path: Path) -> None:
    _fake_imagenet(tmp_path / "in")
    out = imagenet.build(tmp_path / "in", tmp_path / "in100")
    imagenet.build(tmp_path / "in", tmp_path / "in100")  # re-runnable
    # 101st class not linked
    assert sorted(p.name for p in (out / "val").iterdir()) == list(imagenet.wnids())
    ds = imagenet.load(out, "val")
    assert len(ds) == 100 and list(ds.labels) == list(range(100))
    img, label = ds.get(42)
    assert img.shape == (224, 224, 3) and img.dtype == np.uint8 and label == 42
    assert abs(int(img[100, 100, 0]) - 42) <= 1  # the file's own colour survives resize/crop
    (out / "val" / imagenet.wnids()[3]).unlink()
    (out / "val" / imagenet.wnids()[3]).symlink_to(tmp_path / "gone")  # dangling link
    with pytest.raises(BenchError, match="missing or dangling"):
        imagenet.load(out, "val")


def test_folder_sets_decode_in_worker_processes_by_default(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Auto loader workers: none for in-memory sets, a rank's cores less one (at most 8) for
    folders; the images and their order do not depend on it."""
    import os

    from bench.data import ArrayImageSet, iter_batches, loader_workers

    _fake_imagenet(tmp_path / "in")
    ds = imagenet.load(imagenet.build(tmp_path / "in", tmp_path / "in100"), "val")
    idx = np.array([5, 3, 99, 0])
    (i0, x0, y0), (i1, x1, y1) = (next(iter_batches(ds, idx, 4, w)) for w in (0, 1))
    assert (i0 == idx).all() and (i1 == idx).all() and np.array_equal(x0, x1) and (y0 == y1).all()
    arrays = ArrayImageSet(
        "toy", "test", ("a",), np.zeros((2, 4, 4, 3), np.uint8), np.zeros(2, np.int64)
    )
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: set(range(16)))
    monkeypatch.delenv("LOCAL_WORLD_SIZE", raising=False)
    assert (loader_workers(arrays), loader_workers(ds), loader_workers(ds, 0)) == (0, 8, 0)
    monkeypatch.setenv("LOCAL_WORLD_SIZE", "4")  # four torchrun processes share the node's cores
    assert loader_workers(ds) == 3
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {0})
    assert loader_workers(ds) == 0


def test_imagenet_eval_transform_is_resize_256_then_center_crop_224() -> None:
    from torchvision import transforms

    im = Image.fromarray(np.random.default_rng(0).integers(0, 255, (300, 400, 3), dtype=np.uint8))
    ours = imagenet.eval_transform()(im)
    ref = np.asarray(transforms.CenterCrop(224)(transforms.Resize(256)(im)))
    assert ours.shape == (224, 224, 3) and np.array_equal(ours, ref)


def test_corrupt_image_file_is_named(tmp_path: Path) -> None:
    _fake_imagenet(tmp_path / "in")
    bad = tmp_path / "in" / "val" / imagenet.wnids()[0] / f"{imagenet.wnids()[0]}_0.JPEG"
    bad.write_bytes(b"\xff\xd8 broken")
    ds = imagenet.load(imagenet.build(tmp_path / "in", tmp_path / "in100"), "val")
    with pytest.raises(BenchError, match="cannot read image .*_0.JPEG"):
        ds.get(0)


def test_fashion_mnist_in_torchvisions_download_folder_is_found(
    fmnist_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import shutil

    raw = tmp_path / "FashionMNIST" / "raw"
    shutil.copytree(fmnist_dir, raw)
    monkeypatch.delenv("BENCH_FMNIST_DIR")
    assert fmnist.find_dir(download=False, cache=tmp_path) == raw
    with pytest.raises(BenchError, match="Fashion-MNIST not found"):
        fmnist.find_dir(download=False, cache=tmp_path / "elsewhere")


def test_training_crops_depend_on_seed_epoch_and_image_only(tmp_path: Path) -> None:
    """Not on the process's random state, the loader workers or the rank: ranks draw independent
    crops and a resumed run draws the crops of an uninterrupted one."""
    import dataclasses

    import torch

    from bench.data import FolderImageSet, iter_batches

    ramp = np.add.outer(np.arange(120), np.arange(160)).astype(np.uint8)
    paths = []
    for k in range(3):
        paths.append(tmp_path / f"{k}.png")
        Image.fromarray(np.stack([ramp, ramp // 2, ramp * k], -1)).save(paths[-1])
    base = FolderImageSet(
        "toy", "train", ("a",), paths, np.zeros(3, np.int64), imagenet.train_transform(64)
    )
    epoch0, epoch1 = (dataclasses.replace(base, draws=(0, e)) for e in (0, 1))
    torch.manual_seed(1)
    a = epoch0.get(2)[0]
    torch.manual_seed(2)
    assert np.array_equal(a, epoch0.get(2)[0]) and not np.array_equal(a, epoch1.get(2)[0])
    alone = np.concatenate([b for _, b, _ in iter_batches(epoch0, np.arange(3), 2, workers=0)])
    in_workers = np.concatenate([b for _, b, _ in iter_batches(epoch0, np.arange(3), 2, workers=1)])
    assert np.array_equal(alone, in_workers) and np.array_equal(alone[2], a)


def test_data_guard_refuses_other_data_only_where_rows_depend_on_it(tmp_path: Path) -> None:
    from types import SimpleNamespace

    from bench.store import data_guard

    rows = [
        SimpleNamespace(
            dataset="imagenet100", kind="corruption", source="rendered", condition="fog", severity=2
        ),
        SimpleNamespace(
            dataset="cluttered_fmnist", kind="clean", source="", condition="clean", severity=0
        ),
    ]
    assert data_guard.measured(rows, "imagenet100") == {"imagenet100", "imagenet100-c/fog/2"}
    a, b = (
        {"images": 5, "classes": 100, "fingerprint": "aa"},
        {"images": 4, "classes": 100, "fingerprint": "bb"},
    )
    data_guard.check(tmp_path, {"imagenet100": a, "imagenet100-c/fog/2": a}, set())
    first = (tmp_path / "data.json").read_text()
    with pytest.raises(
        BenchError,
        match=r"other imagenet100-c/fog/2 data \(5 images.*\(4 images.*--corruption-root",
    ):
        data_guard.check(
            tmp_path,
            {"imagenet100": a, "imagenet100-c/fog/2": b},
            {"imagenet100", "imagenet100-c/fog/2"},
        )
    assert (tmp_path / "data.json").read_text() == first
    # no stored row read it: recorded anew, and said to have changed
    assert data_guard.check(tmp_path, {"imagenet100-c/fog/2": b}, {"imagenet100"}) == {
        "imagenet100-c/fog/2"
    }
    assert json.loads((tmp_path / "data.json").read_text()) == {
        "imagenet100": a,
        "imagenet100-c/fog/2": b,
    }
    assert (
        data_guard.check(tmp_path, {"imagenet100": a, "cluttered_fmnist": a}, {"imagenet100"})
        == set()
    )
    with pytest.raises(
        BenchError,
        match=r"another Fashion-MNIST copy \(BENCH_FMNIST_DIR\) or cluttered-set build\?",
    ):
        data_guard.check(tmp_path, {"cluttered_fmnist": b}, {"cluttered_fmnist"})
    (tmp_path / "data.json").write_text("[1")
    with pytest.raises(BenchError, match="data.json is damaged"):
        data_guard.check(tmp_path, {"imagenet100": a}, set())
